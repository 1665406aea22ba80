"""The pytest plugin installed with the platform (the ``pytest11`` entry point ``plugs``):
the real services a connector's tests run against, as fixtures.

* ``pg_server_url``: PostgreSQL at ``PLUGS_TEST_DATABASE_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), used only to create
  ``pg_database``: a database of this run's own (per xdist worker), migrated to head, with
  an application role and a system role of its own; all dropped at the end.
* ``redis_url``: a Redis db number of this run's own at ``PLUGS_TEST_REDIS_URL`` (default
  ``redis://127.0.0.1:6379``), flushed at the end.
* ``platform_env``: the ``PLUGS_*`` settings of this process and the processes it starts
  (the application and system roles, the Redis db as broker and rate-limit store, a fresh
  credential key, loopback vendors allowed), in force for the session.  Override
  ``platform_extra_env`` to add variables (e.g. a ``PYTHONPATH``); implement the hook
  ``pytest_plugs_settings_changed`` to follow the settings as they change.
* ``app_db``: the platform's database as the application sees it.
* ``sync_worker``: one real `plugs worker` process on every queue, for the session.

With ``CI=true`` a missing service fails the run; elsewhere the tests that need it are
skipped and the end of the run says which.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from connectors.testing import hookspecs, processes, services

if TYPE_CHECKING:
    from models.session import Database

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Services found missing in this run, reported at its end.
SKIPPED: set[str] = set()


def need(service: str, error: str | None) -> None:
    """Skip the test (fail it under CI) when ``service`` is not reachable (``error``)."""
    if error is None:
        return
    message = f"{service} is not reachable ({error})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true needs every service", pytrace=False)
    SKIPPED.add(service)
    pytest.skip(f"{message}; start the services with `docker compose up -d`")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SKIPPED:
        terminalreporter.write_sep("!", "SERVICES MISSING: TESTS SKIPPED", red=True, bold=True)
        for service in sorted(SKIPPED):
            terminalreporter.write_line(f"  {service}: not reachable, its tests were skipped")
        terminalreporter.write_line(
            "  Start them with `docker compose up -d` (or point PLUGS_TEST_DATABASE_URL / "
            "PLUGS_TEST_REDIS_URL at running servers) and run the suite again."
        )


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("PLUGS_TEST_DATABASE_URL", services.DEFAULT_PG_URL)
    need("PostgreSQL", services.postgres_error(url))
    return url


@pytest.fixture(scope="session")
def pg_database(pg_server_url: str) -> Iterator[dict[str, str]]:
    """A database of this run's own, migrated to head, with an application role.

    Yields the URLs of the schema owner (``owner_url``, the server's admin user), of the
    application role (``app_url``) and of the system role (``system_url``); see
    :func:`connectors.testing.services.scratch_database`.
    """
    tag = f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}_{secrets.token_hex(3)}"
    with services.scratch_database(pg_server_url, tag) as database:
        yield database


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis db number of this run's own, emptied at the end."""
    base = os.environ.get("PLUGS_TEST_REDIS_URL", services.DEFAULT_REDIS_URL)
    need("Redis", services.redis_error(base))
    url, release = services.claim_redis_db(base)
    try:
        yield url
    finally:
        release()


@pytest.fixture(scope="session")
def platform_extra_env() -> dict[str, str]:
    """Variables added to ``platform_env`` (none); override it in a ``conftest.py``."""
    return {}


@pytest.fixture(scope="session")
def platform_env(
    request: pytest.FixtureRequest,
    pg_database: dict[str, str],
    redis_url: str,
    platform_extra_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """PLUGS_* settings for this test process and the processes it starts: the app and
    system roles on this run's database, this run's Redis db as broker, result backend and rate-limit
    store, a fresh credential key, a data folder of the session's, and permission to call
    the vendor simulators on loopback; then ``platform_extra_env``."""
    from connectors.credentials import new_key_entry

    env = {
        "PLUGS_DATABASE_URL": pg_database["app_url"],
        "PLUGS_SYSTEM_DATABASE_URL": pg_database["system_url"],
        "PLUGS_MIGRATION_DATABASE_URL": pg_database["owner_url"],
        "PLUGS_BROKER_URL": redis_url,
        "PLUGS_RESULT_BACKEND": redis_url,
        "PLUGS_REDIS_URL": redis_url,
        "PLUGS_SECRET_KEYS": new_key_entry(),
        "PLUGS_ALLOW_PRIVATE_URLS": "true",
        "PLUGS_DATA_DIR": str(tmp_path_factory.mktemp("plugs-data")),
        **platform_extra_env,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _settings_changed(request.config)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _settings_changed(request.config)


def _settings_changed(config: pytest.Config) -> None:
    services.reload_settings()
    config.hook.pytest_plugs_settings_changed()


@pytest.fixture
def app_db(platform_env: dict[str, str]) -> Database:
    """The process-wide database (get_database()) once platform_env is in force; taken anew
    by every test, since a test that changes the settings replaces it."""
    from models.session import get_database

    return get_database()


@pytest.fixture(scope="session")
def sync_worker(
    platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.WorkerProcess]:
    """One real worker process (prefork, 2 children) on every queue, for the whole run."""
    handle = processes.start_worker(platform_env, tmp_path_factory.mktemp("sync-worker"))
    yield handle
    handle.stop()
