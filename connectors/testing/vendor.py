"""A connector driven end to end: a vendor simulator served over real HTTP on loopback, an
integration of a fresh organization pointed at it by its settings, and runs started with
the `plugs` command, worked on by a real worker and read back from the database.

A simulator is what :class:`simulators.base.Simulator` makes (``simulators`` ships with the
platform): an ``httpx`` handler that ``with sim:`` serves on loopback at ``sim.url``, whose
``fail_next(count, status=..., retry_after=...)`` injects errors and whose ``requests``
logs what it answered (items with ``.status``)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from connectors.integrations import add_integration
from connectors.testing.processes import PLUGS, run_plugs
from models import AuditLog, Contact, IntegrationLog
from models.accounts import create_organization
from models.integrations import RUN_STATUSES
from models.session import Database

#: The statuses a run ends in.
FINISHED = tuple(status for status in RUN_STATUSES if status != "running")


@dataclass
class Vendor:
    """A running simulator and the integration of one fresh organization pointed at it."""

    sim: Any
    base_url: str
    db: Database
    org_id: uuid.UUID
    integration_id: uuid.UUID
    #: Whatever a test's hooks want to keep about this vendor (ids they made, ...).
    scratch: dict[str, Any] = field(default_factory=dict)

    def start(self, *, streams: list[str] | None = None, full_refresh: bool = False) -> uuid.UUID:
        """Start a run as an operator does (`plugs sync`); its id."""
        args = ["sync", str(self.integration_id)]
        for stream in streams or ():
            args += ["--stream", stream]
        if full_refresh:
            args.append("--full")
        return _run_id(run_plugs(*args))

    def sync(self, **kwargs: Any) -> IntegrationLog:
        """Start a run (``streams``, ``full_refresh``) and wait for the worker to finish it."""
        return self.wait(self.start(**kwargs))

    def replay(self, run_id: uuid.UUID) -> IntegrationLog:
        """Replay the records ``run_id`` failed (`plugs sync replay`) and wait for it."""
        return self.wait(_run_id(run_plugs("sync", "replay", str(run_id))))

    def wait(self, run_id: uuid.UUID, timeout: float = 180) -> IntegrationLog:
        return wait_for_run(self.db, self.org_id, run_id, timeout)

    def count(self, model: type = Contact, *, include_deleted: bool = False) -> int:
        with self.db.tenant(self.org_id) as session:
            query = select(func.count()).select_from(model)
            return session.scalar(query.execution_options(include_deleted=include_deleted)) or 0

    def audit_rows(self, table: str = "contacts") -> int:
        """Audit rows written for ``table``: one per row created, changed or deleted."""
        with self.db.tenant(self.org_id) as session:
            query = select(func.count()).where(AuditLog.table_name == table)
            return session.scalar(query) or 0


def _run_id(result: subprocess.CompletedProcess[str]) -> uuid.UUID:
    """The run id `plugs sync` printed (on a line of its own)."""
    command = f"`plugs {' '.join(result.args[len(PLUGS) :])}`"
    if result.returncode != 0:
        raise AssertionError(f"{command} failed: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        try:
            return uuid.UUID(line.strip())
        except ValueError:
            continue
    raise AssertionError(f"{command} printed no run id: {result.stdout!r} {result.stderr!r}")


def wait_for_run(
    db: Database, org_id: uuid.UUID, run_id: uuid.UUID, timeout: float = 180
) -> IntegrationLog:
    """The run once it has ended (success, partial or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.tenant(org_id) as session:
            run = session.get(IntegrationLog, run_id)
            if run is not None and run.status in FINISHED:
                return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


@contextmanager
def connect(
    db: Database,
    provider: str,
    sim: Any,
    credentials: Mapping[str, Any],
    settings: Callable[[str], Mapping[str, Any]] = lambda base_url: {"base_url": base_url},
    *,
    vendor: type[Vendor] = Vendor,
) -> Iterator[Vendor]:
    """Serve ``sim`` and yield a ``vendor`` for a new organization connected to
    ``provider`` with ``credentials`` and ``settings(base_url)``."""
    with sim:
        org = create_organization(db, f"{provider} customer {uuid.uuid4().hex[:6]}")
        found = add_integration(db, org.id, provider, credentials, settings(sim.url))
        yield vendor(sim, sim.url, db, org.id, found.id)
