"""The Celery application, configured from :mod:`celeryconfig`.

``plugs worker`` (or ``celery -A workers.app worker``) runs it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from connectors.credentials import CredentialsError, key_ring
from core.errors import TenancyError
from core.settings import get_settings
from models import host_events, outbox, rls
from models.session import get_database
from notifications import producers
from workers import logs
from workers.broker_check import BrokerCheck

log = logging.getLogger(__name__)
TASK_MODULES = (
    "workers.tasks.events",
    "workers.tasks.maintenance",
    "workers.tasks.notifications",
    "workers.tasks.schedules",
    "workers.tasks.subscriptions",
    "workers.tasks.sync",
    "workers.tasks.webhooks",
)


def _prepare_embedded_default() -> None:
    """The filesystem broker and SQLite files need their folders before the first message."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.broker_url is None:
        (settings.broker_folder() / "control").mkdir(parents=True, exist_ok=True)


_prepare_embedded_default()
app = Celery("plugs", include=TASK_MODULES)
app.config_from_object("celeryconfig")
# A Redis broker that goes silent is noticed and connected again (AMQP has heartbeats).
app.steps["consumer"].add(BrokerCheck)
# Committed outbox rows are published through this app; expense decisions notify.
outbox.install(app)
producers.install()
host_events.install()  # integration.error to the host product's endpoints

# Structured, redacted logs for the worker and beat (Celery's own records included), and
# each task's id, name and id arguments on the records it writes: see workers.logs.
signals.setup_logging.connect(logs.setup_celery_logging, weak=False)
signals.task_prerun.connect(logs.enter_task, weak=False)
signals.task_postrun.connect(logs.leave_task, weak=False)


def refuse_without_usable_keys(process: str) -> None:
    """Stop ``process`` (worker, beat, the HTTP app) in one line unless the credential keys
    are usable: set and well-formed (PostgreSQL needs PLUGS_SECRET_KEYS; the embedded
    default makes its key file).  Without them every sync would fail on decrypt."""
    try:
        key_ring()
    except CredentialsError as exc:
        raise SystemExit(f"{process} refuses to start: {exc}") from None


@signals.worker_init.connect
def _refuse_a_role_that_bypasses_rls(**_: object) -> None:
    """A worker on PostgreSQL must connect as a role row-level security applies to, and do
    its work across organizations as the system role (see :mod:`models.rls`); and it must
    hold usable credential keys."""
    try:
        get_database().verify_roles()
    except (rls.UnsafeRoleError, TenancyError) as exc:
        # Celery logs and swallows exceptions from signal handlers; SystemExit stops it.
        raise SystemExit(f"worker refuses to start: {exc}") from None
    refuse_without_usable_keys("worker")


@signals.beat_init.connect
def _beat_needs_usable_keys(**_: object) -> None:
    refuse_without_usable_keys("beat")


@signals.worker_ready.connect
def _say_ready(sender: Any = None, **_: object) -> None:
    """One line once the worker consumes, shown at the default level (WARNING) too."""
    level = (
        logging.INFO if logging.getLogger().getEffectiveLevel() <= logging.INFO else logging.WARNING
    )
    queues = sorted(q.name for q in sender.task_consumer.queues) if sender is not None else []
    name = getattr(sender, "hostname", "worker")
    log.log(level, "worker %s ready, consuming %s", name, ", ".join(queues) or "no queue")


@signals.worker_process_init.connect
def _fresh_connections_in_each_child(**_: object) -> None:
    """Pooled connections must not cross a fork: each child process opens its own."""
    get_database().dispose(close=False)
