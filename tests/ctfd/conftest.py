"""Shared set-up of the tests that run against a real CTFd 3.8.7 (tests/ctfd).

How to run (from the repository root):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

or tests/ctfd/run-plugin-tests (TAP). CTFD_PATH is a CTFd 3.8.7 checkout with its venv and
pytest; without it every test here is skipped. The plugin is linked into the checkout as
CTFd/plugins/docker_challenges (a symlink outside this repository) and imported only as
CTFd.plugins.docker_challenges.

MariaDB: the plugin tests that take the `backend` fixture also run on MariaDB, on the server of
CTFD_PLUGIN_TEST_DATABASE_URL (default mysql+pymysql://root@127.0.0.1/ctfd_plugin_test; "none"
turns MariaDB off), in the database named there plus "_<pid>" (ctfd_plugin_test_1234: two runs
at once never share one), created and dropped by each test. When that server cannot be reached,
those cases are skipped and say why.

Each test file skips itself (module level) when CTFD_PATH is unset. Nothing is imported from
CTFd here until a fixture needs it, so other tests in this directory are not affected by
CTFd's import-time configuration.
"""

import contextlib
import os
import re
import sys

import pytest

CTFD_PATH = os.environ.get("CTFD_PATH", "")
SKIP_REASON = "CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_SRC = os.path.join(REPO, "plugin", "docker_challenges")
SQL_INITIAL = os.path.join(REPO, "src", "sql", "001_initial.sql")
FIXTURE_SQL = os.path.join(REPO, "tests", "fixtures", "docker_challenge.sql")
MARIADB_URL = os.environ.get(
    "CTFD_PLUGIN_TEST_DATABASE_URL", "mysql+pymysql://root@127.0.0.1/ctfd_plugin_test"
)
# The key-derivation vectors of docs/schema.md and tests/unit/test_flag.c.
MASTER_HEX = bytes(range(32)).hex()


def _link_plugin():
    """CTFd/plugins/docker_challenges -> this repository's plugin (created when missing)."""
    link = os.path.join(CTFD_PATH, "CTFd", "plugins", "docker_challenges")
    if os.path.islink(link) or os.path.exists(link):
        if os.path.realpath(link) != os.path.realpath(PLUGIN_SRC):
            raise pytest.UsageError(
                f"{link} exists but is not a link to {PLUGIN_SRC}; remove it or point it here"
            )
        return
    os.symlink(PLUGIN_SRC, link)


@contextlib.contextmanager
def in_ctfd_dir():
    """CTFd reads `migrations/` relative to the working directory (MariaDB) and writes
    `.ctfd_secret_key` there on first import: both belong to the checkout, not to this repo."""
    here = os.getcwd()
    os.chdir(CTFD_PATH)
    try:
        yield
    finally:
        os.chdir(here)


if CTFD_PATH:
    CTFD_PATH = os.path.abspath(CTFD_PATH)
    if CTFD_PATH not in sys.path:
        sys.path.insert(0, CTFD_PATH)  # `CTFd` and CTFd's own `tests` package
    _link_plugin()
    with in_ctfd_dir():
        import CTFd.config  # noqa: F401  (its first import may write .ctfd_secret_key)


# ---- databases ---------------------------------------------------------------------


def _mariadb_problem():
    """None when the MariaDB server of MARIADB_URL answers, else why not."""
    if MARIADB_URL.lower() in ("", "none", "off"):
        return "MariaDB is turned off (CTFD_PLUGIN_TEST_DATABASE_URL=none)"
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine.url import make_url

        url = make_url(MARIADB_URL)
        engine = create_engine(url._replace(database=None))  # the server, not the database
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any reason at all: report it as the skip reason
        return f"MariaDB not reachable at {MARIADB_URL}: {exc.__class__.__name__}: {exc}"
    return None


_mariadb_checked = []


@pytest.fixture(params=["sqlite", "mariadb"])
def backend(request):
    """The database a test's CTFd runs on: "sqlite" (in memory) or "mariadb"."""
    if request.param == "mariadb":
        if not _mariadb_checked:
            _mariadb_checked.append(_mariadb_problem())
        if _mariadb_checked[0]:
            pytest.skip(_mariadb_checked[0])
    return request.param


def _sqlite_pragma_only_for_sqlite():
    """CTFd's create_app() on SQLite registers a *process-wide* Engine "connect" listener that
    runs `PRAGMA foreign_keys=ON` on every new connection, MariaDB's included (which then fail).
    CTFd's own suite never mixes databases in one process; this one does. So its listeners
    are swapped for one that does the same for SQLite connections only (test-only plumbing)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    listeners = Pool.dispatch.connect._clslevel.get(Pool, ())
    for fn in {fn for fn in listeners if getattr(fn, "__name__", "") == "set_sqlite_pragma"}:
        event.remove(Engine, "connect", fn)
    if not _sqlite_only_listener:

        def sqlite_foreign_keys(dbapi_connection, connection_record):
            if isinstance(dbapi_connection, sqlite3.Connection):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        event.listen(Engine, "connect", sqlite_foreign_keys)
        _sqlite_only_listener.append(sqlite_foreign_keys)


_sqlite_only_listener = []


def _mariadb_test_url():
    """MARIADB_URL with this process's id added to the database name, so two test runs at the
    same time (say `make check` and a helper's own run) never drop each other's database."""
    from sqlalchemy.engine.url import make_url

    url = make_url(MARIADB_URL)
    return str(url._replace(database=f"{url.database or 'ctfd_plugin_test'}_{os.getpid()}"))


def _drop_database(url):
    from sqlalchemy_utils import database_exists, drop_database

    if database_exists(url):
        drop_database(url)


@contextlib.contextmanager
def ctfd_app(backend="sqlite", user_mode="users", setup=True):
    """A set-up CTFd with plugins loaded, on SQLite (in memory) or on MariaDB (the database of
    CTFD_PLUGIN_TEST_DATABASE_URL, dropped before and after); destroyed on exit."""
    with in_ctfd_dir():
        from CTFd import create_app
        from CTFd.config import TestingConfig
        from tests.helpers import CTFdTestClient, destroy_ctfd, setup_ctfd

        url = "sqlite://" if backend == "sqlite" else _mariadb_test_url()

        class PluginTestConfig(TestingConfig):
            SAFE_MODE = False
            SQLALCHEMY_DATABASE_URI = url

        if backend != "sqlite":
            _drop_database(url)
        app = create_app(PluginTestConfig)
        app.test_client_class = CTFdTestClient
        if backend == "sqlite":
            _sqlite_pragma_only_for_sqlite()
    try:
        if setup:
            setup_ctfd(app, user_mode=user_mode)
        with app.app_context():
            from CTFd.utils import set_config

            set_config("incorrect_submissions_per_min", 1000)
        yield app
    finally:
        destroy_ctfd(app)
        with app.app_context():
            app.db.engine.dispose()


# ---- the C application's tables ----------------------------------------------------


def container_tables_sql(dialect):
    """The statements of src/sql/001_initial.sql (split on ';' at line ends), as MariaDB runs
    them, or translated for SQLite (same tables and columns, SQLite's spelling)."""
    with open(SQL_INITIAL, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if not line.lstrip().startswith("--")]
    statements, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    statements = [s for s in statements if s]
    if dialect == "mysql":
        return statements
    out = []
    for s in statements:
        s = re.sub(r"\)\s*ENGINE=\w+[^;]*$", ")", s)
        s = re.sub(r"ENUM\([^)]*\)", "VARCHAR(8)", s)
        s = re.sub(r"BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT", s)
        s = re.sub(r"\b(VAR)?BINARY\(\d+\)", "BLOB", s)
        s = re.sub(r"UNIQUE KEY \w+ \(", "UNIQUE (", s)
        s = re.sub(r",\s*\n\s*KEY \w+ \([^)]*\)", "", s)
        s = s.replace("INSERT IGNORE", "INSERT OR IGNORE")
        out.append(s)
    return out


def create_container_tables(db):
    """Create the C application's container_* tables in a test CTFd's database."""
    from sqlalchemy import text

    dialect = db.engine.dialect.name
    for statement in container_tables_sql("mysql" if dialect == "mysql" else "sqlite"):
        db.session.execute(text(statement))
    db.session.commit()


def write_key_file(path, master_hex=MASTER_HEX):
    path.write_text(master_hex + "\n")
    os.chmod(path, 0o600)
    return str(path)


# ---- fixtures the test files use ----------------------------------------------------


@pytest.fixture
def make_ctfd():
    """make_ctfd(backend, user_mode="users") -> a context manager giving a set-up CTFd."""
    return ctfd_app


@pytest.fixture
def container_tables():
    """container_tables(db): create the C application's container_* tables."""
    return create_container_tables


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    """A flag key file with the test-vector master key, named by CTFD_CONTAINERS_FLAG_KEY_FILE."""
    path = write_key_file(tmp_path / "flag.key")
    monkeypatch.setenv("CTFD_CONTAINERS_FLAG_KEY_FILE", path)
    monkeypatch.delenv("CTFD_CONTAINERS_FLAG_GRACE_SECONDS", raising=False)
    return path
