"""The plugin's table `docker_challenge`: created the CTFd way, with exactly the contract's columns.

How to run (from the repository root; CTFD_PATH is a CTFd 3.8.7 checkout with its venv):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

On SQLite CTFd builds the table from the model (create_all); on MariaDB the plugin's
migration does, and the result is compared column by column with tests/fixtures/
docker_challenge.sql (docs/schema.md's statement) loaded beside it. MariaDB cases use
CTFD_PLUGIN_TEST_DATABASE_URL (default mysql+pymysql://root@127.0.0.1/ctfd_plugin_test, with
"_<pid>" added to the database name).
"""

import os
import re

import pytest

if not os.environ.get("CTFD_PATH"):
    pytest.skip("CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)", allow_module_level=True)

from sqlalchemy import inspect, text  # noqa: E402

CONTRACT = [  # docs/schema.md: name, type, nullable, default
    ("id", "int", False, None),
    ("image", "varchar(255)", False, None),
    ("ports", "varchar(255)", False, None),
    ("flag_template", "varchar(255)", False, None),
    ("flag_env", "varchar(64)", False, "FLAG"),
    ("memory_mb", "int", True, None),
    ("cpus", "decimal(5,2)", True, None),
    ("lifetime_seconds", "int", True, None),
    ("max_renewals", "int", True, None),
    ("backend", "varchar(16)", True, None),
    ("warm_pool", "int", True, None),
    ("route_owner_only", "boolean", True, None),
    ("connect", "varchar(16)", True, None),
    ("allow_internet", "boolean", True, None),
    ("cap_add", "varchar(255)", True, None),
    ("read_only", "boolean", True, None),
    ("placement", "varchar(255)", True, None),  # migration 5c1a7e2d9b40 (swarm placement)
]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "docker_challenge.sql")


def _head_revision():
    """The plugin's newest migration: the revision no other one revises."""
    folder = os.path.join(REPO, "plugin", "docker_challenges", "migrations")
    revs, downs = set(), set()
    for name in os.listdir(folder):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                text_ = f.read()
            revs.add(re.search(r'^revision = "([0-9a-f]+)"', text_, re.M).group(1))
            down = re.search(r'^down_revision = "([0-9a-f]+)"', text_, re.M)
            if down:
                downs.add(down.group(1))
    heads = revs - downs
    assert len(heads) == 1, f"the plugin's migrations have {len(heads)} heads: {heads}"
    return heads.pop()


def _normal_type(sqla_type):
    t = str(sqla_type).lower().replace(" ", "")
    return {"integer": "int", "numeric(5,2)": "decimal(5,2)", "tinyint(1)": "boolean",
            "tinyint": "boolean"}.get(t, t)


def _default(value):
    if value is None:
        return None
    return str(value).strip("'\"")


def test_table_has_exactly_the_contract_columns(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        inspector = inspect(app.db.engine)
        columns = inspector.get_columns("docker_challenge")
        got = [(c["name"], _normal_type(c["type"]), c["nullable"], _default(c.get("default"))) for c in columns]
        assert got == CONTRACT
        assert inspector.get_pk_constraint("docker_challenge")["constrained_columns"] == ["id"]
        fks = inspector.get_foreign_keys("docker_challenge")
        assert len(fks) == 1
        fk = fks[0]
        assert (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) == (
            ["id"],
            "challenges",
            ["id"],
        )
        assert (fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_table_matches_the_contract_fixture(backend, make_ctfd):
    """The migration's table and docs/schema.md's statement, side by side in information_schema."""
    with make_ctfd(backend) as app, app.app_context():
        from CTFd.utils import get_config

        # The migrations ran (not create_all): CTFd records the plugin's last revision
        # (base, warm pool, exposure, placement: one chain).
        assert get_config("docker_challenges_alembic_version") == _head_revision()
        with open(FIXTURE, encoding="utf-8") as f:
            ddl = "\n".join(line for line in f.read().splitlines() if not line.startswith("--"))
        ddl = ddl.replace("docker_challenge_ibfk_1", "fixture_ibfk_1")
        ddl = re.sub(r"\bdocker_challenge\b", "docker_challenge_fixture", ddl).rstrip().rstrip(";")
        db = app.db
        db.session.execute(text(ddl))
        db.session.commit()
        schema = db.session.execute(text("SELECT DATABASE()")).scalar()

        def columns(table):
            return db.session.execute(
                text(
                    "SELECT column_name, ordinal_position, column_type, is_nullable, column_default, "
                    "column_key, extra, character_set_name, collation_name "
                    "FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                    "ORDER BY ordinal_position"
                ),
                {"s": schema, "t": table},
            ).fetchall()

        def table_info(table):
            return db.session.execute(
                text(
                    "SELECT engine, table_collation FROM information_schema.tables "
                    "WHERE table_schema = :s AND table_name = :t"
                ),
                {"s": schema, "t": table},
            ).fetchall()

        def delete_rule(table):
            return db.session.execute(
                text(
                    "SELECT delete_rule, referenced_table_name FROM information_schema.referential_constraints "
                    "WHERE constraint_schema = :s AND table_name = :t"
                ),
                {"s": schema, "t": table},
            ).fetchall()

        assert [tuple(r) for r in columns("docker_challenge")] == [
            tuple(r) for r in columns("docker_challenge_fixture")
        ]
        assert len(columns("docker_challenge")) == len(CONTRACT)
        assert table_info("docker_challenge") == table_info("docker_challenge_fixture")
        assert [tuple(r) for r in delete_rule("docker_challenge")] == [("CASCADE", "challenges")]
        assert delete_rule("docker_challenge") == delete_rule("docker_challenge_fixture")
        db.session.execute(text("DROP TABLE docker_challenge_fixture"))
        db.session.commit()


def test_migration_is_idempotent(backend, make_ctfd):
    with make_ctfd(backend) as app, app.app_context():
        from CTFd.plugins.migrations import upgrade

        upgrade(plugin_name="docker_challenges", lower=None)  # from the base, as an import does
        upgrade(plugin_name="docker_challenges")
        names = [c["name"] for c in inspect(app.db.engine).get_columns("docker_challenge")]
        assert names == [c[0] for c in CONTRACT]


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_warm_pool_revision_upgrades_a_table_without_it(backend, make_ctfd):
    """A site migrated before warm pools: the second revision adds the column, data kept."""
    with make_ctfd(backend) as app, app.app_context():
        from CTFd.plugins.migrations import upgrade
        from CTFd.utils import set_config

        db = app.db
        db.session.execute(text("ALTER TABLE docker_challenge DROP COLUMN warm_pool"))
        db.session.commit()
        set_config("docker_challenges_alembic_version", "30bfc2e338c8")
        upgrade(plugin_name="docker_challenges")
        names = [c["name"] for c in inspect(db.engine).get_columns("docker_challenge")]
        # Re-added, the column comes last on MariaDB (ALTER ... ADD appends); the set and
        # the count are the contract, not the order.
        assert sorted(names) == sorted(c[0] for c in CONTRACT) and len(names) == len(CONTRACT)


def test_deleting_a_challenge_deletes_its_row(backend, make_ctfd):
    from tests.helpers import login_as_user

    with make_ctfd(backend) as app:
        with app.app_context():
            admin = login_as_user(app, name="admin")
            r = admin.post(
                "/api/v1/challenges",
                json={
                    "name": "web",
                    "category": "web",
                    "description": "d",
                    "value": 100,
                    "state": "visible",
                    "type": "docker",
                    "image": "demo:1",
                    "ports": "80/http",
                    "flag_template": "CTF{<hex:32>}",
                },
            )
            assert r.status_code == 200, r.get_json()
            cid = r.get_json()["data"]["id"]
            count = "SELECT COUNT(*) FROM docker_challenge WHERE id = :id"
            assert app.db.session.execute(text(count), {"id": cid}).scalar() == 1
            app.db.session.commit()
            assert admin.delete(f"/api/v1/challenges/{cid}", json={}).status_code == 200
            assert app.db.session.execute(text(count), {"id": cid}).scalar() == 0
            # The database's own cascade too: delete the challenges row directly.
            r = admin.post(
                "/api/v1/challenges",
                json={
                    "name": "web2",
                    "category": "web",
                    "description": "d",
                    "value": 100,
                    "state": "visible",
                    "type": "docker",
                    "image": "demo:1",
                    "ports": "80/http",
                    "flag_template": "CTF{<hex:32>}",
                },
            )
            cid = r.get_json()["data"]["id"]
            app.db.session.execute(text("DELETE FROM challenges WHERE id = :id"), {"id": cid})
            app.db.session.commit()
            assert app.db.session.execute(text(count), {"id": cid}).scalar() == 0
