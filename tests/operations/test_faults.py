"""Ordinary faults, recovered from without an operator: real processes, loopback only.

* The path to Redis goes silent (a TCP proxy drops every byte, no RST): the worker notices
  within its timeouts, connects again once the path is back and consumes a new task; beat
  publishes again.
* Redis is killed (``kill -9``) and restarted, twice: the worker consumes again after
  each restart and never exits with status 0; with its broker gone for good it exits 1.
* The path to PostgreSQL goes silent in the middle of a transaction: the server ends the
  orphaned transaction within the idle timeout, so its row lock is gone; a sync cut that
  way mid-run completes, every record exactly once.
* PostgreSQL goes silent under the HTTP receiver: it answers 503 within its budget.

Each test runs on its own Redis server (a ``redis-server`` on a free loopback port) or its
own proxy, never on the shared servers' connections.  Figures measured are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import select, update

from connectors.testing.processes import WorkerProcess, die_with_parent, environment
from core.settings import Settings
from models import Contact, WebhookDelivery
from models.accounts import create_organization
from models.integrations import IntegrationLog
from models.session import Database
from models.sync_state import SyncStreamRun
from tests import services
from tests.connectors.harness import Vendor, hubspot, wait_for_run
from tests.operations.conftest import settings_env
from tests.webhooks.conftest import SECRET
from tests.webhooks.proxy import Proxy, proxy_to

#: Short timeouts, so that the faults resolve in seconds (PLUGS_* of the processes).
BROKER_TIMEOUTS = {
    "PLUGS_BROKER_SOCKET_TIMEOUT": "2",
    "PLUGS_BROKER_CONNECT_TIMEOUT": "1",
    "PLUGS_BROKER_HEARTBEAT": "1",
}
#: How long the broker stays silent.
SILENCE = 12.0
DATABASE_TIMEOUTS = {
    "PLUGS_DATABASE_STATEMENT_TIMEOUT": "5",
    "PLUGS_DATABASE_LOCK_TIMEOUT": "3",
    "PLUGS_DATABASE_IDLE_TRANSACTION_TIMEOUT": "3",
}


def _figure(text: str) -> None:
    print(f"[fault figure] {text}", file=sys.stderr)


def _wait(condition: Callable[[], Any], timeout: float, what: str, *logs: WorkerProcess) -> float:
    """Seconds until ``condition()`` is true; fails after ``timeout`` with the ends of the
    logs of ``logs``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            tails = "\n".join(handle.output()[-4000:] for handle in logs)
            raise AssertionError(f"{what}: not within {timeout:g} s\n{tails}")
        time.sleep(0.05)
    return time.monotonic() - started


def _wait_for_run(
    vendor: Vendor, run_id: uuid.UUID, timeout: float, *logs: WorkerProcess
) -> IntegrationLog:
    """The run once it has ended; after ``timeout``, fails with where its streams stood
    and the ends of the logs of ``logs``."""
    try:
        return wait_for_run(vendor.db, vendor.org_id, run_id, timeout=timeout)
    except AssertionError as exc:
        with vendor.db.tenant(vendor.org_id) as session:
            streams = session.scalars(
                select(SyncStreamRun).where(SyncStreamRun.run_id == run_id)
            ).all()
            state = "\n".join(
                f"stream {row.stream}: {row.status}, {row.pages_done} pages, attempts "
                f"{row.attempts}, updated {row.updated_at}, resume_at {row.resume_at}, "
                f"last error {row.last_error!r}"
                for row in streams
            )
        tails = "\n".join(handle.output()[-4000:] for handle in logs)
        raise AssertionError(f"{exc} (now {datetime.now(UTC)})\n{state}\n{tails}") from exc


# --- a Redis server of the test's own --------------------------------------------------------


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence: a restart empties it."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, services.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Without preloaded libraries: on the suite's fake clock (tests/clock/run_at.py)
            # libfaketime keeps redis-server from starting; its timeouts are relative anyway.
            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
        )
        _wait(self._answers, 10, "redis-server starts")

    def _answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL
        self.process.wait()

    def url(self, db: int, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.port}/{db}"

    def client(self, db: int) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed", pytrace=False)
    server = RedisServer(tmp_path)
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


def _start_worker(
    env: dict[str, str], folder: Path, *, queues: str, concurrency: int = 1
) -> WorkerProcess:
    """`plugs worker` as an operator starts it (mingle, gossip and heartbeats on)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"worker-{len(list(folder.glob('worker-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "-Q", queues]
            + ["--concurrency", str(concurrency), "--loglevel", "INFO"]
            + ["--hostname", f"faults-{uuid.uuid4().hex[:6]}@%h"],
            env=environment(env, PLUGS_DATA_DIR=str(folder / "var")),
            cwd=services.ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return WorkerProcess(process, log, env)


def _send_ping(broker: str) -> str:
    """Send maintenance.ping through our own app, to ``broker``; its task id.  The worker
    stores the result; this process does not wait on it (its result consumer would
    outlive the test's Redis server)."""
    with settings_env(PLUGS_BROKER_URL=broker, PLUGS_RESULT_BACKEND="disabled://"):
        from workers.tasks.maintenance import ping

        return str(ping.apply_async().id)


def _succeeded(results: redis.Redis, task_id: str) -> bool:
    """What the result backend says of the task, read straight from Redis."""
    stored = results.get(f"celery-task-meta-{task_id}")
    return stored is not None and json.loads(stored)["status"] == "SUCCESS"


def _records(handle: WorkerProcess) -> Iterator[tuple[float, str]]:
    """(epoch seconds, message) of the process's JSON log records."""
    for line in handle.output().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line Celery printed itself
        if isinstance(record, dict) and "time" in record:
            when = datetime.fromisoformat(str(record["time"])).timestamp()
            yield when, str(record.get("message", ""))


def _log_times(handle: WorkerProcess, pattern: str) -> list[float]:
    """When the process logged a message matching ``pattern``."""
    return [when for when, message in _records(handle) if re.search(pattern, message)]


def _retry_interval_announced(handle: WorkerProcess, before: float) -> float:
    """The last "Trying again in N seconds" the process logged before ``before``: kombu
    connects again 2 s after a failure, 2 s more after each further one (up to 30 s)."""
    interval = 0.0
    for when, message in _records(handle):
        match = re.search(r"Trying again in ([\d.]+) seconds", message)
        if match and when <= before:
            interval = float(match.group(1))
    return interval


# --- the settings ----------------------------------------------------------------------------


def _celery_conf(**env: str) -> dict[str, Any]:
    """celeryconfig's keys as a fresh process with ``env`` sees them."""
    code = (
        "import json, celeryconfig as c; print(json.dumps({k: getattr(c, k) for k in dir(c) "
        "if k.islower() and not k.startswith('_')}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=services.ROOT,
        env=environment({}, **env),
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_broker_and_result_backend_connections_time_out(tmp_path: Path) -> None:
    redis_conf = _celery_conf(
        PLUGS_DATA_DIR=str(tmp_path),
        PLUGS_BROKER_URL="redis://127.0.0.1:6379/0",
        PLUGS_RESULT_BACKEND="redis://127.0.0.1:6379/1",
        PLUGS_BROKER_SOCKET_TIMEOUT="7",
        PLUGS_BROKER_HEARTBEAT="4",
    )
    options = redis_conf["broker_transport_options"]
    assert options["socket_timeout"] == 7 and options["health_check_interval"] == 4
    assert options["socket_connect_timeout"] == 5 and options["socket_keepalive"] is True
    assert redis_conf["redis_socket_timeout"] == 7 and redis_conf["redis_socket_keepalive"]
    assert redis_conf["redis_backend_health_check_interval"] == 4
    assert redis_conf["broker_connection_max_retries"] == 100
    amqp_conf = _celery_conf(
        PLUGS_DATA_DIR=str(tmp_path),
        PLUGS_BROKER_URL="amqp://guest:guest@127.0.0.1//",
        PLUGS_BROKER_CONNECTION_MAX_RETRIES="0",
    )
    assert amqp_conf["broker_heartbeat"] == 10
    assert amqp_conf["broker_connection_max_retries"] is None  # 0: retry forever
    assert "socket_timeout" not in amqp_conf["broker_transport_options"]


@pytest.mark.postgres
def test_each_kind_of_process_waits_on_the_database_as_long_as_its_settings_say(
    pg_server_url: str,
) -> None:
    from models.session import make_engine

    names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    seen: dict[str | None, list[str]] = {}
    with settings_env(PLUGS_DATABASE_LOCK_TIMEOUT="7", PLUGS_HTTP_DATABASE_TIMEOUT="1.5"):
        for profile in ("worker", "http", None):
            engine = make_engine(pg_server_url, profile=profile, pool_size=1, max_overflow=0)
            try:
                for _ in range(2):  # the second time from the pool, after its RESET ALL
                    with engine.connect() as connection:
                        driver = connection.connection.driver_connection
                        seen[profile] = [driver.execute(f"SHOW {n}").fetchone()[0] for n in names]
                        parameters = driver.info.get_parameters()
                        connection.exec_driver_sql("SET statement_timeout = 1")
            finally:
                engine.dispose()
            assert parameters["keepalives"] == "1" and parameters["tcp_user_timeout"] == "30000"
            assert int(parameters["connect_timeout"]) == (2 if profile == "http" else 5)
    assert seen == {
        "worker": ["5min", "7s", "30s"],
        "http": ["1500ms", "1500ms", "1500ms"],
        None: ["0", "0", "0"],
    }


# --- the broker ------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
def test_a_silent_broker_is_noticed_and_the_worker_and_beat_carry_on(
    platform_env: dict[str, str], private_redis: RedisServer, tmp_path: Path
) -> None:
    timeouts = {k: float(v) for k, v in BROKER_TIMEOUTS.items()}
    configured = sum(timeouts.values())  # socket + connect + health check, seconds
    queued, results = private_redis.client(0), private_redis.client(1)
    with proxy_to("127.0.0.1", private_redis.port) as proxy:
        env = {
            **platform_env,
            **BROKER_TIMEOUTS,
            "PLUGS_BROKER_URL": private_redis.url(0, proxy.port),
            "PLUGS_RESULT_BACKEND": private_redis.url(1, proxy.port),
        }
        # The worker serves the maintenance queue only: beat's scheduler ticks (queue
        # "default", every second) stay in Redis, where the test counts them.
        worker = _start_worker(env, tmp_path / "worker", queues="maintenance")
        beat = services.start_beat(env, tmp_path / "beat", tick_seconds=1.0)
        direct = private_redis.url(0)
        try:
            first = _send_ping(direct)
            _wait(lambda: _succeeded(results, first), 60, "the worker answers a ping")
            _wait(lambda: queued.llen("default") > 0, 30, "beat publishes its tick")

            proxy.blackhole()
            silent_from = time.time()
            lost = r"did not answer a PING|Connection to broker lost"
            noticed = _wait(
                lambda: [t for t in _log_times(worker, lost) if t >= silent_from],
                SILENCE,
                "the worker notices",
                worker,
            )
            time.sleep(SILENCE - noticed)
            task_id = _send_ping(direct)  # waits in Redis for the worker to come back
            ticks = queued.llen("default")
            proxy.restore()
            back_at = time.time()

            consumed = _wait(
                lambda: _succeeded(results, task_id), 60, "the worker consumes", worker
            )
            published = _wait(lambda: queued.llen("default") > ticks, 60, "beat publishes", beat)
            worker_backoff = _retry_interval_announced(worker, back_at)
            beat_backoff = _retry_interval_announced(beat, back_at)
        finally:
            beat.stop()
            worker.stop()
    _figure(
        f"broker silent {SILENCE:g} s (timeouts {BROKER_TIMEOUTS}): the worker noticed after "
        f"{noticed:.1f} s; once the path was back the worker consumed a new task after "
        f"{consumed:.1f} s (its reconnect interval then {worker_backoff:g} s) and beat "
        f"published after {published:.1f} s (its interval {beat_backoff:g} s)"
    )
    assert noticed <= 2 * configured
    # Once the path is back, each connects again at its next attempt (kombu's interval:
    # 2 s after the first failure, 2 s more after each) and works within twice the
    # configured timeouts of it.
    assert consumed <= worker_backoff + 2 * configured
    assert published <= beat_backoff + 2 * configured
    assert worker.process.returncode == 0 and beat.process.returncode == 0  # stopped by us


@pytest.mark.redis
@pytest.mark.postgres
def test_redis_killed_and_restarted_twice_the_worker_consumes_again(
    platform_env: dict[str, str], private_redis: RedisServer, tmp_path: Path
) -> None:
    broker, backend = private_redis.url(0), private_redis.url(1)
    env = {**platform_env, **BROKER_TIMEOUTS, "PLUGS_BROKER_URL": broker}
    env["PLUGS_RESULT_BACKEND"] = backend
    workers = [_start_worker(env, tmp_path / "worker", queues="maintenance", concurrency=2)]
    exits: list[int] = []

    def connected() -> bool:
        if workers[-1].process.poll() is not None:  # it exited: restart it, as a supervisor
            exits.append(workers[-1].process.returncode)
            workers.append(_start_worker(env, tmp_path / "worker", queues="maintenance"))
        return bool(private_redis.client(0).exists("_kombu.binding.maintenance"))

    def consumes() -> float:
        """Seconds until the worker has consumed a ping sent once it is connected (a
        restarted server is empty: the worker declares its queue again when it is)."""
        started = time.monotonic()
        _wait(connected, 60, "the worker connects", workers[-1])
        task_id = _send_ping(broker)
        results = private_redis.client(1)
        _wait(lambda: _succeeded(results, task_id), 60, "the worker consumes", workers[-1])
        return time.monotonic() - started

    recovered = []
    try:
        consumes()
        for _ in range(2):
            private_redis.kill()
            time.sleep(5)
            private_redis.start()
            recovered.append(consumes())
    finally:
        for worker in workers:
            worker.stop()
    _figure(
        f"redis killed and restarted twice: the worker consumed again {recovered[0]:.1f} s "
        f"and {recovered[1]:.1f} s after each restart; exits: {exits or 'none'}"
    )
    # Where the worker could not carry on (kombu's Redis transport can fail on a second
    # restart), it said so with its exit status, for its supervisor to restart it.
    assert 0 not in exits


@pytest.mark.redis
@pytest.mark.postgres
def test_a_worker_whose_broker_is_gone_for_good_exits_non_zero(
    platform_env: dict[str, str], private_redis: RedisServer, tmp_path: Path
) -> None:
    env = {
        **platform_env,
        **BROKER_TIMEOUTS,
        "PLUGS_BROKER_URL": private_redis.url(0),
        "PLUGS_RESULT_BACKEND": private_redis.url(1),
        "PLUGS_BROKER_CONNECTION_MAX_RETRIES": "2",
    }
    worker = _start_worker(env, tmp_path / "worker", queues="maintenance")
    try:
        _wait(lambda: private_redis.client(0).exists("_kombu.binding.maintenance"), 60, "up")
        private_redis.kill()
        gone_at = time.monotonic()
        code = worker.process.wait(timeout=60)
    finally:
        worker.stop()
    _figure(
        f"broker gone for good: the worker exited {code} after {time.monotonic() - gone_at:.1f} s"
    )
    assert code == 1, worker.output()[-3000:]
    assert "Unrecoverable error" in worker.output()


# --- PostgreSQL ------------------------------------------------------------------------------


def _server_of(url: str) -> tuple[str, int]:
    """The host and port of the test's PostgreSQL (PLUGS_TEST_DATABASE_URL's, not 5432's)."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _through(url: str, proxy: Proxy, **query: str) -> str:
    """``url`` with the proxy's address (and ``query`` parameters) instead of the server's."""
    parts = urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    return urlunsplit(
        parts._replace(netloc=netloc, query="&".join(filter(None, [parts.query, extra])))
    )


def _admin(pg_database: dict[str, str]) -> psycopg.Connection[Any]:
    """A direct connection of the server's admin (not through any proxy), autocommit."""
    url = pg_database["owner_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _row_is_locked(admin: psycopg.Connection[Any], contact_id: uuid.UUID) -> bool:
    try:
        with admin.transaction():
            admin.execute("SELECT 1 FROM contacts WHERE id = %s FOR UPDATE NOWAIT", [contact_id])
    except psycopg.errors.LockNotAvailable:
        return True
    return False


@pytest.mark.postgres
def test_a_transaction_cut_off_by_a_silent_database_lets_go_of_its_locks(
    platform_env: dict[str, str], pg_database: dict[str, str], app_db: Database
) -> None:
    org_id = create_organization(app_db, f"faults {uuid.uuid4().hex[:6]}").id
    with app_db.tenant(org_id) as session:
        contact = Contact(first_name="Ada", last_name="Lovelace")
        session.add(contact)
        session.flush()
        contact_id = contact.id

    idle = float(DATABASE_TIMEOUTS["PLUGS_DATABASE_IDLE_TRANSACTION_TIMEOUT"])
    answer = float(DATABASE_TIMEOUTS["PLUGS_DATABASE_STATEMENT_TIMEOUT"]) + 1
    with (
        proxy_to(*_server_of(pg_database["owner_url"])) as proxy,
        settings_env(**DATABASE_TIMEOUTS),
    ):
        db = Database(
            _through(pg_database["app_url"], proxy),
            system_url=_through(pg_database["system_url"], proxy),
            profile="worker",
        )
        locked, go = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}

        def unit_of_work() -> None:
            try:
                with db.tenant(org_id) as session:
                    session.execute(
                        update(Contact).where(Contact.id == contact_id).values(first_name="Cut")
                    )
                    outcome["idle_from"] = time.monotonic()
                    locked.set()
                    go.wait(30)
                    outcome["commit_from"] = time.monotonic()
                # (the block ends: COMMIT, which the silent path drops)
            except Exception as exc:  # noqa: BLE001 - what the unit of work saw
                outcome["error"] = exc
            outcome["ended"] = time.monotonic()

        worker = threading.Thread(target=unit_of_work)
        worker.start()
        assert locked.wait(30)
        with _admin(pg_database) as admin:
            assert _row_is_locked(admin, contact_id)
            proxy.blackhole()
            go.set()
            _wait(lambda: not _row_is_locked(admin, contact_id), 3 * idle, "the lock is freed")
            freed = time.monotonic() - outcome["idle_from"]
            worker.join(answer + 10)
            assert not worker.is_alive(), "the unit of work hangs on the silent database"
            with admin.cursor() as cursor:
                cursor.execute("SELECT first_name FROM contacts WHERE id = %s", [contact_id])
                (first_name,) = cursor.fetchone() or (None,)
        proxy.restore()
        db.dispose()
    gave_up = outcome["ended"] - outcome["commit_from"]
    _figure(
        f"database silent mid-transaction: the row lock was gone {freed:.1f} s after the "
        f"transaction's last statement "
        f"(idle-transaction timeout {idle:g} s); the client gave up its COMMIT after "
        f"{gave_up:.1f} s"
    )
    assert idle - 0.5 <= freed <= idle + 2
    assert first_name == "Ada"  # the cut transaction did not commit
    assert isinstance(outcome.get("error"), Exception)
    assert gave_up <= answer + 1


@pytest.mark.redis
@pytest.mark.postgres
def test_a_sync_cut_from_its_database_mid_run_completes_exactly_once(
    platform_env: dict[str, str],
    pg_database: dict[str, str],
    app_db: Database,
    private_redis: RedisServer,
    tmp_path: Path,
) -> None:
    contacts = 3000
    idle = float(DATABASE_TIMEOUTS["PLUGS_DATABASE_IDLE_TRANSACTION_TIMEOUT"])
    broker, backend = private_redis.url(0), private_redis.url(1)
    name = f"faults-{uuid.uuid4().hex[:8]}"
    with proxy_to(*_server_of(pg_database["owner_url"])) as proxy:
        env = {
            **platform_env,
            **DATABASE_TIMEOUTS,
            "PLUGS_DATABASE_URL": _through(
                platform_env["PLUGS_DATABASE_URL"], proxy, application_name=name
            ),
            "PLUGS_SYSTEM_DATABASE_URL": _through(
                platform_env["PLUGS_SYSTEM_DATABASE_URL"], proxy, application_name=name
            ),
            "PLUGS_BROKER_URL": broker,
            "PLUGS_RESULT_BACKEND": backend,
            "PLUGS_PAGE_LEASE": "5",
        }
        worker = _start_worker(
            env, tmp_path / "worker", queues="default,maintenance,syncs", concurrency=2
        )
        beat = services.start_beat(env, tmp_path / "beat", tick_seconds=1.0)
        idle_seen: dict[int, list[float]] = {}
        try:
            with hubspot(app_db) as vendor, _admin(pg_database) as admin:
                vendor.sim.add_contacts(contacts)
                audit_before = vendor.audit_rows()
                with settings_env(PLUGS_BROKER_URL=broker, PLUGS_RESULT_BACKEND=backend):
                    run_id = vendor.start()

                def in_transaction() -> list[int]:
                    rows = admin.execute(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE application_name = %s AND state = 'idle in transaction'",
                        [name],
                    ).fetchall()
                    return [pid for (pid,) in rows]

                # Cut when a page's transaction is open, if one is seen in time.
                _wait(lambda: vendor.count(Contact) > 0, 120, "the first page", worker)
                deadline = time.monotonic() + 10
                while not in_transaction() and time.monotonic() < deadline:
                    pass
                proxy.blackhole()
                silent_from = time.monotonic()
                while time.monotonic() - silent_from < idle + 4:
                    for pid in in_transaction():
                        idle_seen.setdefault(pid, []).append(time.monotonic() - silent_from)
                    time.sleep(0.1)
                (left,) = admin.execute(
                    "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                    " WHERE application_name = %s AND state = 'idle in transaction'",
                    [name],
                ).fetchone() or (None,)
                proxy.restore()
                back_at = time.monotonic()
                run = _wait_for_run(vendor, run_id, 120, worker, beat)
                finished = time.monotonic() - back_at
                stored = vendor.count(Contact)
                audited = vendor.audit_rows() - audit_before
        finally:
            beat.stop()
            worker.stop()
            app_db.dispose()
    longest = max((seen[-1] for seen in idle_seen.values()), default=0.0)
    _figure(
        f"database silent {idle + 4:g} s mid-sync of {contacts} contacts: "
        f"{len(idle_seen)} transactions cut off, the last ended by the server "
        f"{longest:.1f} s into the silence (idle-transaction timeout {idle:g} s); "
        f"the run ended {run.status} {finished:.1f} s after the database was back"
    )
    assert left == 0  # no lock left behind by an orphaned transaction
    assert longest <= idle + 1
    assert run.status == "success", run.status
    assert stored == contacts and audited == contacts  # every record exactly once


# --- the HTTP receiver -----------------------------------------------------------------------


def _delivery(vendor: Vendor, base_url: str, contact_id: str) -> dict[str, Any]:
    path = f"/webhooks/hubspot/{vendor.integration_id}"
    event = vendor.sim.contact_event("propertyChange", contact_id)
    headers, body = vendor.sim.webhook_delivery([event], base_url + path, SECRET)
    return {"url": base_url + path, "content": body, "headers": headers}


async def _post_all(requests: list[dict[str, Any]]) -> list[tuple[int, float]]:
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(request: dict[str, Any]) -> tuple[int, float]:
            started = time.monotonic()
            response = await client.post(**request)
            return response.status_code, time.monotonic() - started

        return await asyncio.gather(*(post(r) for r in requests))


@pytest.mark.postgres
def test_the_receiver_answers_503_within_its_budget_when_the_database_is_silent(
    platform_env: dict[str, str], pg_database: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    limits = Settings().database_limits("http")
    budget = limits.answer + limits.connect  # a pooled connection's ping, then a new one
    credentials = {"private_app_token": "pat-na1-simulator", "client_secret": SECRET}
    with (
        hubspot(app_db, credentials=credentials) as vendor,
        proxy_to(*_server_of(pg_database["owner_url"])) as proxy,
    ):
        ids = vendor.sim.add_contacts(12)
        env = {
            **platform_env,
            "PLUGS_DATABASE_URL": _through(platform_env["PLUGS_DATABASE_URL"], proxy),
            "PLUGS_SYSTEM_DATABASE_URL": _through(platform_env["PLUGS_SYSTEM_DATABASE_URL"], proxy),
        }
        receiver = services.start_http(env, tmp_path)
        base = receiver.env["base_url"]
        try:
            before = asyncio.run(_post_all([_delivery(vendor, base, i) for i in ids[:4]]))
            proxy.blackhole()
            during = asyncio.run(_post_all([_delivery(vendor, base, i) for i in ids[4:8]]))
            proxy.restore()
            after = asyncio.run(_post_all([_delivery(vendor, base, i) for i in ids[8:]]))
        finally:
            receiver.stop()
    slowest = max(seconds for _, seconds in during)
    _figure(
        f"database silent under the receiver: {len(during)} requests answered "
        f"{sorted({s for s, _ in during})} in at most {slowest:.1f} s (budget {budget:g} s)"
    )
    assert [s for s, _ in before] == [200] * 4 and [s for s, _ in after] == [200] * 4
    assert [s for s, _ in during] == [503] * 4
    assert slowest <= budget + 1.5
    with vendor.db.tenant(vendor.org_id) as session:
        stored = session.scalars(select(WebhookDelivery)).all()
    assert len(stored) == 8  # what got 200 is stored; what got 503 is not
