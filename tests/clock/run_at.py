"""Run the test suite as if it were another time of day: ``run_at.py 23:30 -- -n 2``.

Every process of the run sees the same fake clock, which keeps running: libfaketime
(``LD_PRELOAD``) with one offset from the real clock (``FAKETIME="+N"`` seconds), inherited
by everything pytest starts (workers, beat, the HTTP app, the ``plugs`` command).  The
code compares Python's time with PostgreSQL's ``now()`` (server defaults, SQL), so the run
gets a private PostgreSQL cluster under the same clock, made for it on a free loopback
port (``PLUGS_TEST_DATABASE_URL`` points at it) and removed at the end.  Redis and
RabbitMQ stay the shared servers: what they time (expiries, rate windows) is relative.

Needs libfaketime 0.9.11 or newer (0.9.10, Debian 12's, breaks Python 3.11's sleeps and
thread waits; the script checks before it starts) and the PostgreSQL server binaries
(``initdb``, ``postgres``).  As root, the cluster runs as the ``postgres`` user
(PostgreSQL refuses root).  Run it with the virtualenv's Python; pytest runs in the
repository's root::

    .venv/bin/python tests/clock/run_at.py 23:30 [--date 2026-12-31] [--libfaketime PATH] \
        [-- PYTEST ARGS]

The exit status is pytest's; bad input or a missing tool is one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn

import psycopg

ROOT = Path(__file__).resolve().parents[2]
#: Where a source build (first), Debian (multiarch) and other distributions put libfaketime.
LIBFAKETIME = (
    "/usr/local/lib/faketime/libfaketime.so.1",
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
)
#: What a Python child does on the fake clock before the run: a sleep (clock_nanosleep on
#: the monotonic clock) and a thread wait (sem_clockwait).  libfaketime 0.9.10 (Debian 12)
#: fails the first with EINVAL or hangs in the second under Python 3.11; 0.9.11 fixed both.
PYTHON_PROBE = (
    "import threading, time; time.sleep(0.01); threading.Event().wait(0.01); print(time.time())"
)
PROBE_SECONDS = 10.0
#: How far PostgreSQL's or Python's clock may be from the one asked for (start-up, rounding).
TOLERANCE_SECONDS = 5.0
STARTUP_SECONDS = 60.0


class Refused(Exception):
    """Bad input or a missing tool: one line for the user."""


def fail(message: str) -> NoReturn:
    raise Refused(message)


# --- what was asked ----------------------------------------------------------------------


def parse(argv: list[str]) -> tuple[datetime, str | None, list[str]]:
    """The UTC moment asked for, a libfaketime named with ``--libfaketime``, and the
    arguments for pytest (those after ``--``)."""
    split = argv.index("--") if "--" in argv else len(argv)
    ours, pytest_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="run_at.py",
        description="Run pytest with every process (and a private PostgreSQL) on a fake UTC "
        "clock that starts at the time given and keeps running.",
    )
    parser.add_argument("at", metavar="HH:MM", help="the UTC time of day to start at (HH:MM[:SS])")
    parser.add_argument(
        "--date", metavar="YYYY-MM-DD", help="the UTC date to start on (default: today's)"
    )
    parser.add_argument(
        "--libfaketime", metavar="PATH", help="libfaketime.so.1 to use (default: found)"
    )
    parser.error = fail  # type: ignore[method-assign]  # one line, no usage block
    args = parser.parse_args(ours)
    if not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", args.at):
        fail(f"not a time of day: {args.at!r} (HH:MM or HH:MM:SS, UTC)")
    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
        moment = datetime.fromisoformat(f"{day.isoformat()}T{args.at}").replace(tzinfo=UTC)
    except ValueError as exc:
        fail(f"not a date and time: {' '.join(filter(None, (args.date, args.at)))} ({exc})")
    return moment, args.libfaketime, pytest_args


# --- the tools ---------------------------------------------------------------------------


def find_libfaketime(named: str | None = None) -> str:
    if named is not None:
        if not Path(named).is_file():
            fail(f"no libfaketime at {named}")
        return str(Path(named).resolve())
    for pattern in LIBFAKETIME:
        for path in sorted(glob.glob(pattern)):
            return path
    fail("libfaketime not found: install libfaketime 0.9.11 or newer (see the README's Tests)")


def find_postgres_bin() -> Path:
    """The folder of ``initdb`` and ``postgres``: on PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if versions:
        newest = max(versions, key=lambda p: int(re.sub(r"\D", "", Path(p).parts[-3]) or 0))
        return Path(newest).parent
    fail("PostgreSQL's initdb not found: install the server (Debian: apt-get install postgresql)")


def cluster_user() -> str | None:
    """The account the cluster runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        fail("run as a user other than root, or create a 'postgres' user: PostgreSQL refuses root")
    return "postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clock_env(libfaketime: str, offset: int) -> dict[str, str]:
    """The variables that put a process (and its children) on the fake clock.

    A fixed offset rather than a start time (``@...``): every process, whenever it starts,
    agrees on the time.  The monotonic clock moves with it (only its differences matter):
    with FAKETIME_DONT_FAKE_MONOTONIC, libfaketime 0.9.12 makes every handover of Python's
    GIL take milliseconds, and the suite's timing tests fail."""
    preload = " ".join(filter(None, (libfaketime, os.environ.get("LD_PRELOAD", ""))))
    return {"LD_PRELOAD": preload, "FAKETIME": f"{offset:+d}"}


def environment(clock: dict[str, str], **extra: str) -> dict[str, str]:
    """This process's environment on the fake clock (other libfaketime settings dropped)."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    return {**plain, **clock, **extra}


# --- the private cluster -----------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: a fast shutdown of PostgreSQL if this script dies, however it dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def private_postgres(
    bindir: Path, folder: Path, user: str | None, clock: dict[str, str]
) -> Iterator[int]:
    """A PostgreSQL cluster in ``folder`` (trust auth, loopback only) running on the fake
    clock; yields its port and stops it on the way out."""
    if user is not None:
        shutil.chown(folder, user, user)
    groups: list[str] | None = [] if user else None  # the postgres user's own group, none of ours
    data, log = folder / "data", folder / "postgres.log"
    env = {k: v for k, v in environment(clock).items() if not k.startswith(("PLUGS_", "PG"))}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    made = subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        + ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        user=user,
        group=user,
        extra_groups=groups,
    )
    if made.returncode != 0:
        lines = (made.stderr or made.stdout).strip().splitlines()
        fail(f"initdb failed: {lines[-1] if lines else f'exit status {made.returncode}'}")
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(folder),
        "timezone": "UTC",
        "max_connections": "200",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    command = [str(bindir / "postgres"), "-D", str(data)]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    with log.open("wb") as output:
        server = subprocess.Popen(
            command,
            env=env,
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            user=user,
            group=user,
            extra_groups=groups,
        )
    try:
        _wait_until_up(server, port, log)
        yield port
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            fail(f"PostgreSQL did not start: {lines[-1] if lines else 'no output'}")
        try:
            with psycopg.connect(_libpq(port), connect_timeout=1):
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    fail(f"PostgreSQL did not answer within {STARTUP_SECONDS:.0f} s")


def _libpq(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def check_python(libfaketime: str, clock: dict[str, str], offset: int) -> None:
    """Refuse a libfaketime under which Python cannot sleep or wait, or keeps real time."""
    too_old = f"{libfaketime} breaks Python's sleeps and waits: use libfaketime 0.9.11 or newer"
    try:
        child = subprocess.run(
            [sys.executable, "-c", PYTHON_PROBE],
            env=environment(clock),
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
        )
    except subprocess.TimeoutExpired:
        fail(f"{too_old} (a thread wait hung)")
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        fail(f"{too_old} ({lines[-1] if lines else f'exit status {child.returncode}'})")
    _check("Python", float(child.stdout), offset)


def check_server(port: int, offset: int) -> None:
    with psycopg.connect(_libpq(port)) as connection:
        row = connection.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    _check("PostgreSQL", float(row[0]) if row else 0.0, offset)


def _check(who: str, seen: float, offset: int) -> None:
    off = seen - (time.time() + offset)
    if abs(off) > TOLERANCE_SECONDS:
        fail(f"{who} is not on the fake clock ({off:+.0f} s off); was LD_PRELOAD dropped?")


# --- the run -----------------------------------------------------------------------------


def run_pytest(pytest_args: list[str], env: dict[str, str]) -> int:
    """pytest in the repository, its exit status.  Ctrl-C reaches it from the terminal; a
    SIGTERM to this script is passed on as SIGINT, so pytest still cleans up after itself
    (heard even when this script was started with SIGINT ignored, as a shell's ``&`` does)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *pytest_args],
        cwd=ROOT,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    try:
        moment, named, pytest_args = parse(sys.argv[1:] if argv is None else argv)
        if os.environ.get("FAKETIME") or "faketime" in os.environ.get("LD_PRELOAD", ""):
            fail("already on a fake clock (FAKETIME or LD_PRELOAD set); run it from a plain shell")
        libfaketime, bindir, user = find_libfaketime(named), find_postgres_bin(), cluster_user()
        offset = round((moment - datetime.now(UTC)).total_seconds())
        clock = clock_env(libfaketime, offset)
        check_python(libfaketime, clock, offset)
        folder = Path(tempfile.mkdtemp(prefix="plugs-clock-"))
        try:
            with private_postgres(bindir, folder, user, clock) as port:
                check_server(port, offset)
                print(
                    f"run_at: the clock starts at {moment:%Y-%m-%d %H:%M:%S} UTC "
                    f"(FAKETIME={clock['FAKETIME']}); PostgreSQL on 127.0.0.1:{port} under it",
                    file=sys.stderr,
                    flush=True,
                )
                url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
                return run_pytest(pytest_args, environment(clock, PLUGS_TEST_DATABASE_URL=url))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except Refused as exc:
        print(f"run_at: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
