"""The webhook inbox: deliveries are stored before they are acknowledged, processed once,
re-enqueued by a sweeper if their task was lost, replayable, and pruned after retention.

* :func:`store` -- the receiver's write: ``INSERT ... ON CONFLICT DO NOTHING`` on
  (integration, vendor delivery id), so a redelivery is stored once.
* :func:`process` -- what ``webhooks.process`` does: count the attempt in a short
  transaction of its own, then in ONE transaction parse the stored delivery, apply each event
  under a savepoint (a failing event is a per-event failure with its reason), write the
  run's ``integration_logs`` row (operation ``webhook``) and mark the delivery processed.  A
  crash anywhere rolls all of it back; the redelivered task does it again, and a delivery
  already processed is left alone, so effects happen once.
* :func:`sweep` -- rows still ``received`` past a deadline are enqueued again (a broker
  that lost the message loses nothing); :func:`prune` deletes finished rows after the
  retention period (longer than any vendor's retry horizon: HubSpot retries for 24 h).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from connectors import loading
from connectors.base import Connector, SyncRequest, WebhookEvent, WebhookRequest
from core.errors import (
    OUR_CONFIGURATION,
    FatalError,
    PlatformConfigError,
    RetryableError,
    SkippableRecordError,
)
from core.redaction import REDACTED, SECRET_HEADERS, is_secret_name
from core.settings import get_settings
from models import host_events, outbox
from models.audit_trail import record_actor_action
from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.session import ROW_LOCK, Database, PlugsSession
from models.webhooks import WebhookDelivery
from runs.lifecycle import finish_run, open_run

log = logging.getLogger(__name__)
PROCESS_TASK = "webhooks.process"
SWEEP_BATCH = 500
#: Query parameters never stored besides secret-named ones (Mailchimp's per-integration
#: ``secret`` rides in the URL): an OAuth authorization code.
SECRET_PARAMS = frozenset({"code"})


@dataclass(frozen=True)
class Stored:
    """The receiver's write: the row's id, and whether it is new (not a redelivery)."""

    organization_id: uuid.UUID
    delivery_id: uuid.UUID
    new: bool


@dataclass(frozen=True)
class Processed:
    """What one processing of a delivery did (returned by the task, shown in Flower)."""

    state: str  # "processed" | "failed" | "already" | "retry" | "paused"
    succeeded: int = 0
    failed: int = 0
    run_id: str | None = None


def clean_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers as stored: the request's own credentials (:data:`SECRET_HEADERS`) left out."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


def clean_url(url: str) -> str:
    """The URL with the values of secret-bearing query parameters removed."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if is_secret_name(k) or k.lower() in SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def store(
    db: Database,
    connector: Connector,
    request: WebhookRequest,
    delivery_key: str,
    event_count: int,
) -> Stored:
    """Insert the delivery (its body as the connector keeps it) unless it is already there,
    committed when this returns: the receiver answers after it.  One statement, one round
    trip (:meth:`models.session.Database.insert_one`); a redelivery costs one more, to
    find the row stored first."""
    integration = connector.integration
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "organization_id": integration.organization_id,
        "integration_id": integration.id,
        "provider": integration.provider,
        "delivery_id": delivery_key[:255],
        "method": request.method,
        "url": clean_url(request.url),
        "headers": clean_headers(request.headers),
        "body": connector.webhook_stored_body(request),
        "received_at": datetime.fromtimestamp(request.received_at).astimezone(),
        "event_count": event_count,
        "status": "received",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    table = WebhookDelivery.__table__
    new_id = db.insert_one(integration.organization_id, table, values, unique=_UNIQUE)
    if new_id is not None:
        return Stored(integration.organization_id, new_id, True)
    with db.tenant(integration.organization_id) as session:
        existing = session.scalar(
            select(WebhookDelivery.id).where(
                WebhookDelivery.integration_id == integration.id,
                WebhookDelivery.delivery_id == values["delivery_id"],
            )
        )
    assert existing is not None
    return Stored(integration.organization_id, existing, False)


#: The inbox's dedup key: a redelivery of a stored delivery inserts nothing.
_UNIQUE = ("integration_id", "delivery_id")


def as_request(delivery: WebhookDelivery) -> WebhookRequest:
    """The stored delivery as the connector first saw it (minus the removed secrets)."""
    return WebhookRequest(
        method=delivery.method,
        url=delivery.url,
        headers=dict(delivery.headers),
        body=bytes(delivery.body),
        received_at=delivery.received_at.timestamp(),
    )


def process(db: Database, org_id: uuid.UUID, delivery_id: uuid.UUID) -> Processed:
    """Apply a stored delivery's events once; see the module docstring.  A delivery of a
    paused integration is left waiting (``paused``), its attempt not counted."""
    try:
        claimed = _claim(db, org_id, delivery_id)
    except PlatformConfigError as exc:  # our keys: the delivery waits for them to be fixed
        _note_error(db, org_id, delivery_id, f"{OUR_CONFIGURATION}{exc}")
        raise
    if isinstance(claimed, Processed):
        return claimed
    connector = claimed
    try:
        return _apply(db, org_id, delivery_id, connector)
    except RetryableError as exc:
        _note_error(db, org_id, delivery_id, str(exc))
        raise
    except FatalError as exc:
        return _give_up(db, org_id, delivery_id, str(exc))


def _claim(db: Database, org_id: uuid.UUID, delivery_id: uuid.UUID) -> Processed | Connector:
    """Count this attempt (its own transaction, so a crash still counts it); refuse a
    finished delivery, and give up on one attempted too often."""
    cap = get_settings().webhook_max_attempts
    with db.tenant(org_id) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=ROW_LOCK)
        if delivery is None or delivery.status != "received":
            return Processed("already")
        integration = session.get(Integration, delivery.integration_id)
        if integration is not None and not integration.is_active:
            return Processed("paused")  # it waits; resuming enqueues it (enqueue_waiting)
        delivery.attempts += 1
        attempts, last_error = delivery.attempts, delivery.last_error
        if integration is not None:
            session.expunge(integration)
    if attempts > cap:
        reason = f"gave up after {attempts - 1} attempts: {last_error or 'no reason'}"
        return _give_up(db, org_id, delivery_id, reason)
    if integration is None:
        return _give_up(db, org_id, delivery_id, "the integration was deleted")
    try:
        return loading.open_connector(integration)
    except FatalError as exc:
        return _give_up(db, org_id, delivery_id, str(exc))


def _apply(
    db: Database, org_id: uuid.UUID, delivery_id: uuid.UUID, connector: Connector
) -> Processed:
    started = utcnow()
    with db.tenant(org_id) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=ROW_LOCK)
        if delivery is None or delivery.status != "received":
            return Processed("already")
        try:
            events = connector.parse_webhook(as_request(delivery))
        except (ValueError, KeyError, TypeError) as exc:
            raise FatalError(f"the stored delivery does not parse: {exc}") from exc
        failures = [
            failure
            for event in events
            if (failure := apply_event(session, connector, event)) is not None
        ]
        run = _write_run(session, delivery, len(events), failures, started)
        delivery.status = "processed"
        delivery.processed_at = utcnow()
        delivery.run_id = run.id
        delivery.last_error = None
        return Processed(
            "processed", len(events) - len(failures), len(failures), run_id=str(run.id)
        )


def apply_event(
    session: PlugsSession, connector: Connector, event: WebhookEvent
) -> dict[str, str] | None:
    """Apply one event under a savepoint (and open the run it asks for); its failure
    (with reason) or None."""
    try:
        with session.begin_nested():
            wanted = connector.apply_webhook_event(session, event)
            if wanted is not None:
                _open_requested_run(session, connector, wanted)
    except SkippableRecordError as exc:
        return {"record_id": str(exc.record_id or event.event_id), "reason": str(exc)[:500]}
    except (ValueError, KeyError, TypeError) as exc:
        return {"record_id": event.event_id, "reason": f"{type(exc).__name__}: {exc}"[:500]}
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return {"record_id": event.event_id, "reason": f"the database refused it: {reason}"[:500]}
    return None


def _open_requested_run(session: PlugsSession, connector: Connector, wanted: SyncRequest) -> None:
    integration = session.get(Integration, connector.integration.id)
    if integration is None:
        raise SkippableRecordError(f"integration {connector.integration.id} is gone")
    open_run(
        session,
        integration,
        streams=list(wanted.streams),
        trigger="webhook",
        record_ids=wanted.record_ids,
    )


def _write_run(
    session: PlugsSession,
    delivery: WebhookDelivery,
    events: int,
    failures: list[dict[str, str]],
    started: datetime,
    *,
    error: str | None = None,
) -> IntegrationLog:
    """The delivery's run, ended by :func:`runs.lifecycle.finish_run`; ``error``: the whole
    delivery failed with this reason (every event counts as failed)."""
    run = IntegrationLog(
        id=uuid.uuid4(),
        integration_id=delivery.integration_id,
        operation="webhook",
        status="running",
        request_data={"delivery": str(delivery.id), "provider": delivery.provider},
        response_data={"succeeded": events - len(failures)},
        started_at=started,
        error_details={"failures": failures} if failures else {},
    )
    if error is not None:
        run.error_details = {"error": error[:1000]}
    session.add(run)
    failed = events if error is not None else len(failures)
    finish_run(
        session,
        run,
        succeeded=events - failed,
        failed=failed,
        broken=error is not None,
        processed=events,
        message=(
            f"webhook delivery failed: {error}"[:1000]
            if error is not None
            else f"webhook delivery: {events} events, {len(failures)} failed"
        ),
    )
    session.flush()
    return run


def _give_up(db: Database, org_id: uuid.UUID, delivery_id: uuid.UUID, reason: str) -> Processed:
    """Mark the delivery failed with ``reason`` and write its failed run."""
    with db.tenant(org_id) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=ROW_LOCK)
        if delivery is None or delivery.status != "received":
            return Processed("already")
        started = utcnow()
        run = _write_run(session, delivery, delivery.event_count, [], started, error=reason)
        delivery.status = "failed"
        delivery.last_error = reason[:1000]
        delivery.run_id = run.id
        host_events.emit(
            session,
            org_id,
            "webhook.failed",
            {
                "delivery_id": str(delivery.id),
                "integration_id": str(delivery.integration_id),
                "provider": delivery.provider,
                "attempts": delivery.attempts,
                "reason": delivery.last_error,
                "run_id": str(run.id),
            },
        )
    log.warning("webhook delivery %s failed: %s", delivery_id, reason)
    return Processed("failed", 0, 0, run_id=str(run.id))


def _note_error(db: Database, org_id: uuid.UUID, delivery_id: uuid.UUID, reason: str) -> None:
    with db.tenant(org_id) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(last_error=reason[:1000], updated_at=utcnow())
        )


#: Integrations whose deliveries wait (paused, not deleted): the sweeper leaves them alone.
_PAUSED = select(Integration.id).where(
    Integration.is_active.is_(False), Integration.is_deleted.is_(False)
)


def sweep(db: Database, *, after: timedelta | None = None) -> int:
    """Enqueue again deliveries still unprocessed ``after`` their receipt or last touch
    (not those of paused integrations: they wait for :func:`enqueue_waiting`)."""
    deadline = utcnow() - (after or timedelta(seconds=get_settings().webhook_sweep_after))
    with db.system("webhooks: sweep the inbox") as session:
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.organization_id)
            .where(
                WebhookDelivery.status == "received",
                WebhookDelivery.received_at < deadline,
                WebhookDelivery.updated_at < deadline,
                WebhookDelivery.integration_id.not_in(_PAUSED),
            )
            .order_by(WebhookDelivery.received_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([r.id for r in rows]))
            .values(updated_at=utcnow())
        )
        outbox.enqueue_many(
            session,
            PROCESS_TASK,
            [(row.organization_id, [str(row.organization_id), str(row.id)]) for row in rows],
        )
    log.info("re-enqueued %d webhook deliveries", len(rows))
    return len(rows)


def enqueue_waiting(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> int:
    """Enqueue the integration's deliveries still waiting in the inbox (``received``), in
    the order they came: what a paused integration received is processed once it resumes."""
    with db.tenant(org_id) as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.integration_id == integration_id,
                    WebhookDelivery.status == "received",
                )
                .order_by(WebhookDelivery.received_at)
            )
        )
        if ids:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(updated_at=utcnow())
            )
            outbox.enqueue_many(
                session, PROCESS_TASK, [(org_id, [str(org_id), str(d)]) for d in ids]
            )
    return len(ids)


def prune(db: Database, *, retention_days: int | None = None) -> int:
    """Delete processed and failed deliveries older than the retention, in batches."""
    days = retention_days or get_settings().webhook_retention_days
    cutoff = utcnow() - timedelta(days=days)
    deleted = 0
    while True:
        with db.system("webhooks: inbox retention") as session:
            ids = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status != "received",
                        WebhookDelivery.received_at < cutoff,
                    )
                    .limit(SWEEP_BATCH)
                )
            )
            if not ids:
                return deleted
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
            deleted += len(ids)


def replay(
    db: Database,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    since: datetime | None = None,
    failed_only: bool = False,
) -> int:
    """Process stored deliveries again (their effects are idempotent): back to
    ``received`` with their attempts reset, enqueued after the commit."""
    with db.tenant(org_id) as session:
        query = select(WebhookDelivery.id).where(WebhookDelivery.integration_id == integration_id)
        if since is not None:
            query = query.where(WebhookDelivery.received_at >= since)
        query = query.where(
            WebhookDelivery.status == "failed"
            if failed_only
            else WebhookDelivery.status.in_(("processed", "failed"))
        )
        ids = list(session.scalars(query.order_by(WebhookDelivery.received_at)))
        if ids:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(status="received", attempts=0, last_error=None, updated_at=utcnow())
            )
            outbox.enqueue_many(
                session, PROCESS_TASK, [(org_id, [str(org_id), str(d)]) for d in ids]
            )
        record_actor_action(
            session,
            org_id,
            table="webhook_inbox",
            record_id=integration_id,
            values={"replayed": len(ids), "failed_only": failed_only},
        )
    return len(ids)


def backlog(db: Database) -> int:
    """Deliveries stored but not processed yet (for metrics and `plugs status`)."""
    with db.system("webhooks: inbox backlog") as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.status == "received")
            )
            or 0
        )
