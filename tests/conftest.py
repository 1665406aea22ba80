"""Real services for the test suite: strict in CI, loud on a laptop.

The fixtures of the services come with the platform, from its pytest plugin
(:mod:`connectors.testing.plugin`, the ``pytest11`` entry point), as a third party's
connector tests get them:

* PostgreSQL: ``PLUGS_TEST_DATABASE_URL`` (default the machine's
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is only used to create a database
  of our own per run (and per xdist worker), migrated to head, and an application role and
  a system role of our own; all are dropped at the end (``pg_database``, ``app_db``).
* Redis: ``PLUGS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``); each run takes a db
  number of its own and flushes it at the end (``redis_url``).
* ``platform_env`` (the settings of this process and of the processes it starts) and
  ``sync_worker`` (a real worker for the session).

With ``CI=true`` a missing service fails the run.  Elsewhere the tests that need it are
skipped and the end of the run says which, and how to start the services.

Here: SQLite, the database as its owner, the `plugs` command, the third-party connector of
``tests/thirdparty_connector`` (on the workers' path), and our Celery app reconfigured
whenever the settings change.

The vendors of the suite are simulators on loopback, so it runs with
``PLUGS_ALLOW_PRIVATE_URLS=true`` (a test of the production guard turns it off for itself).
A safety net refuses, and records, any connect of this process to an address outside
loopback; the run fails at its end if anything tried.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workers.app  # noqa: F401 - the composition root: the outbox publishes through it
from core.settings import get_settings
from models import migrate
from models.session import Database
from tests import services

ROOT = Path(__file__).resolve().parent.parent
#: A package of someone else's with tests of its own: test_plugins.py runs them apart.
collect_ignore = ["thirdparty_connector"]

os.environ.setdefault("PLUGS_ALLOW_PRIVATE_URLS", "true")
get_settings.cache_clear()


# --- the network safety net ----------------------------------------------------------------


class NonLoopbackConnect(PermissionError):
    """The safety net refused a connect outside loopback (something else should have)."""


def _loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name handed to connect(): what it resolves to must be loopback
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return True  # does not resolve: connect() will fail without sending anything
        return all(_loopback(str(info[4][0])) for info in infos)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[list[tuple[object, ...]]]:
    """Refuse any TCP/UDP connect of this process outside 127.0.0.0/8 and ::1, and record
    it: a test of our own network guard asserts this list stayed empty (its refusal came
    first).  ``socket.create_connection`` and TLS sockets connect through
    ``socket.socket.connect``; unix sockets pass untouched."""
    attempts: list[tuple[object, ...]] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _loopback(str(address[0])):
                attempts.append(address)
                raise NonLoopbackConnect(
                    errno.EACCES, f"test safety net: no connect outside loopback ({address[0]})"
                )

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield attempts
    if attempts:
        pytest.fail(f"connects outside loopback were attempted: {attempts}", pytrace=False)


# --- PostgreSQL (pg_database comes from the platform's plugin) ------------------------------


@pytest.fixture(scope="session")
def pg_db(pg_database: dict[str, str]) -> Iterator[Database]:
    """The application's view of PostgreSQL: the app role, RLS enforced (and the system
    role for system sessions)."""
    db = Database(pg_database["app_url"], system_url=pg_database["system_url"])
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def pg_owner_db(pg_database: dict[str, str]) -> Iterator[Database]:
    """The schema owner (the server's admin): for setting up what the app role cannot."""
    db = Database(pg_database["owner_url"], system_url=pg_database["system_url"])
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
    registered only through its `plugs.connectors` entry point (on the workers' path).

    pip builds in the source folder (build/, *.egg-info), so each xdist worker installs from
    a copy of its own: two builds in one folder at once break each other."""
    source = tmp_path_factory.mktemp("thirdparty-source") / "thirdparty_connector"
    shutil.copytree(
        ROOT / "tests" / "thirdparty_connector",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    target = tmp_path_factory.mktemp("thirdparty-site")
    installed = subprocess.run(
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
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"pip could not install the third-party connector:\n{installed.stderr}")
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
def platform_extra_env(thirdparty_site: Path) -> dict[str, str]:
    """Added to the plugin's ``platform_env``: workers get the third-party connector's site
    folder on their path."""
    return {"PYTHONPATH": str(thirdparty_site)}


def pytest_plugs_settings_changed() -> None:
    """The plugin's ``platform_env`` changed the settings: our Celery app follows."""
    services.reset_celery_app()
