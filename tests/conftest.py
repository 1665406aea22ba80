"""Real services for the test suite: strict in CI, loud on a laptop.

* PostgreSQL: ``PLUGS_TEST_DATABASE_URL`` (default the machine's
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is only used to create a database
  of our own per run (and per xdist worker), migrated to head, and an application role of
  our own; both are dropped at the end.
* Redis: ``PLUGS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``); each run takes a db
  number of its own and flushes it at the end.

With ``CI=true`` a missing service fails the run.  Elsewhere the tests that need it are
skipped and the end of the run says which, and how to start the services.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import workers.app  # noqa: F401 - the composition root: the outbox publishes through it
from models import migrate
from models.session import Database, make_engine
from tests import services

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _worker_tag(config: pytest.Config) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return f"{worker}_{secrets.token_hex(3)}"


def _need(service: str, error: str | None) -> None:
    if error is None:
        return
    message = f"{service} is not reachable ({error})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true needs every service", pytrace=False)
    services.SKIPPED.add(service)
    pytest.skip(f"{message}; start the services with `docker compose up -d`")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if services.SKIPPED:
        terminalreporter.write_sep("!", "SERVICES MISSING: TESTS SKIPPED", red=True, bold=True)
        for service in sorted(services.SKIPPED):
            terminalreporter.write_line(f"  {service}: not reachable, its tests were skipped")
        terminalreporter.write_line(
            "  Start them with `docker compose up -d` (or point PLUGS_TEST_DATABASE_URL / "
            "PLUGS_TEST_REDIS_URL at running servers) and run the suite again."
        )


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("PLUGS_TEST_DATABASE_URL", services.DEFAULT_PG_URL)
    _need("PostgreSQL", services.postgres_error(url))
    return url


@pytest.fixture(scope="session")
def pg_database(pg_server_url: str, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A database of this run's own, migrated to head, with an application role.

    Yields ``owner_url`` (the schema owner, the server's admin user) and ``app_url``
    (a role that owns nothing and cannot bypass row-level security).
    """
    tag = _worker_tag(request.config)
    name, role = f"plugs_test_{tag}", f"plugs_app_{tag}"
    password = secrets.token_urlsafe(16)
    admin = make_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    owner_url = make_url(pg_server_url).set(database=name)
    owner = make_engine(owner_url)
    migrate.upgrade(owner)
    from models import rls

    with owner.begin() as connection:
        rls.create_app_role(connection, role, password)
    owner.dispose()
    app_url = owner_url.set(username=role, password=password)
    try:
        yield {
            "owner_url": owner_url.render_as_string(hide_password=False),
            "app_url": app_url.render_as_string(hide_password=False),
            "name": name,
            "role": role,
        }
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_db(pg_database: dict[str, str]) -> Iterator[Database]:
    """The application's view of PostgreSQL: the app role, RLS enforced."""
    db = Database(pg_database["app_url"])
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def pg_owner_db(pg_database: dict[str, str]) -> Iterator[Database]:
    """The schema owner (the server's admin): for setting up what the app role cannot."""
    db = Database(pg_database["owner_url"])
    yield db
    db.dispose()


# --- SQLite (the embedded default) --------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plugs.sqlite3'}"


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url)
    migrate.upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on the embedded default and on PostgreSQL (as the app role)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_db")
    return request.getfixturevalue("pg_db")


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db number of this run's own, emptied at the end."""
    base = os.environ.get("PLUGS_TEST_REDIS_URL", services.DEFAULT_REDIS_URL)
    _need("Redis", services.redis_error(base))
    url, release = services.claim_redis_db(base)
    try:
        yield url
    finally:
        release()


# --- the plugs command --------------------------------------------------------------------


@pytest.fixture
def plugs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the real `plugs` command in a subprocess with the given PLUGS_* environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
        environment.update({"PLUGS_DATA_DIR": str(tmp_path / "var"), **(env or {})})
        return subprocess.run(
            [sys.executable, "-m", "workers.cli", *args],
            capture_output=True,
            text=True,
            env=environment,
            cwd=ROOT,
            timeout=timeout,
        )

    return run


# --- the platform as a process of its own sees it ------------------------------------------


@pytest.fixture(scope="session")
def thirdparty_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where pip installed tests/thirdparty_connector, a connector of someone else's
    registered only through its `plugs.connectors` entry point (on the workers' path)."""
    target = tmp_path_factory.mktemp("thirdparty-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "tests" / "thirdparty_connector"),
        ],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="session")
def acme_installed(thirdparty_site: Path) -> Iterator[Path]:
    """The third-party connector on this test process's path too (workers have it)."""
    from connectors import registry

    sys.path.insert(0, str(thirdparty_site))
    registry.refresh()
    yield thirdparty_site
    sys.path.remove(str(thirdparty_site))
    registry.refresh()


@pytest.fixture(scope="session")
def platform_env(
    pg_database: dict[str, str], redis_url: str, thirdparty_site: Path
) -> Iterator[dict[str, str]]:
    """PLUGS_* settings for this test process and the workers it starts: the app role on
    this run's database, this run's Redis db as broker, result backend and rate-limit store,
    a fresh credential key, and permission to call the local vendor simulators.  Workers
    also get the third-party connector's site folder on their path."""
    from connectors.credentials import new_key_entry

    env = {
        "PYTHONPATH": str(thirdparty_site),
        "PLUGS_DATABASE_URL": pg_database["app_url"],
        "PLUGS_MIGRATION_DATABASE_URL": pg_database["owner_url"],
        "PLUGS_BROKER_URL": redis_url,
        "PLUGS_RESULT_BACKEND": redis_url,
        "PLUGS_REDIS_URL": redis_url,
        "PLUGS_SECRET_KEYS": new_key_entry(),
        "PLUGS_ALLOW_PRIVATE_URLS": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    services.reload_settings()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        services.reload_settings()


@pytest.fixture
def app_db(platform_env: dict[str, str]) -> Database:
    """The process-wide database (get_database()) once platform_env is in force; taken anew
    by every test, since a test that changes the settings replaces it."""
    from models.session import get_database

    return get_database()


@pytest.fixture(scope="session")
def sync_worker(platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real worker process (prefork, 2 children) on every queue, for the whole run."""
    handle = services.start_worker(platform_env, tmp_path_factory.mktemp("sync-worker"))
    yield handle
    handle.stop()
