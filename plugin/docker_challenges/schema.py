"""The plugin's table, made and kept up to date at load, on every database CTFd supports.

CTFd's `plugins.migrations.upgrade()` only calls `create_all()` on SQLite, which never adds a
column to an existing table, and needs a migrations folder and version bookkeeping elsewhere.
The plugin's schema only ever gains nullable columns, so it does the one thing that needs:
add each column a table made by an earlier version lacks (old rows hold NULL, which the
plugin reads as "none"). Idempotent, and safe when several workers load at once (a column
another worker just added is not an error).
"""

import logging

import sqlalchemy as sa

log = logging.getLogger(__name__)
TABLE = "docker_challenge"
#: columns added after the first release: (name, DDL type), each nullable
ADDED_COLUMNS = (("docker_spec_extra", "TEXT"),)


def ensure(db):
    """Create the plugin's table if missing, then add any column it lacks."""
    db.create_all()
    for name, kind in _missing(db.engine):
        statement = f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind}"
        try:
            with db.engine.begin() as conn:
                conn.execute(sa.text(statement))
            log.info("docker_challenges: added column %s.%s", TABLE, name)
        except sa.exc.DBAPIError:
            if name in _columns(db.engine):
                continue  # another worker added it first
            raise


def _missing(engine):
    present = _columns(engine)
    return [column for column in ADDED_COLUMNS if column[0] not in present]


def _columns(engine):
    return {c["name"] for c in sa.inspect(engine).get_columns(TABLE)}
