"""The transactional outbox: tasks are enqueued by writing a row in the same transaction as
the change that needs them, published right after that transaction commits (a session
event), and published again by the sweeper if the process died in between.  The broker is
a transport; the database is the record.

Task arguments are ids only (Flower and ``celery inspect`` show them); a task name may
have a describer (:func:`describe_with`) whose short readable label, computed when the row
is written, is published as the message's ``kwargsrepr``: what Flower shows as its keyword
arguments, e.g. which integration and stream a page task serves.  Never a secret.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import event, or_, select, text, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.bulk import bulk_insert
from models.ids import uuid4s
from models.session import Database, PlugsSession
from models.sync_state import OutboxMessage

log = logging.getLogger(__name__)
#: A row still unpublished this long after it was written is published by the sweeper.
PUBLISH_GRACE = timedelta(seconds=20)
#: A row parked until at most this far ahead is published at once with that time as its
#: ETA (the broker holds it, no worker slot does); one parked longer waits for the sweeper.
PUBLISH_AHEAD = timedelta(seconds=60)
SWEEP_BATCH = 500


def enqueue(
    session: PlugsSession,
    task_name: str,
    *args: str,
    available_at: datetime | None = None,
    organization_id: uuid.UUID | None = None,
) -> OutboxMessage:
    """Write a task into the outbox of the session's transaction.

    ``available_at`` parks it until then (a long Retry-After); the sweeper publishes it.
    ``organization_id`` defaults to the tenant session's (a system session must give it).
    """
    message = OutboxMessage(
        task_name=task_name,
        args=list(args),
        available_at=available_at,
        organization_id=organization_id,
    )
    _describe(session, message)
    session.add(message)
    session.info.setdefault(_PENDING, []).append(message)
    return message


def enqueue_many(
    session: PlugsSession,
    task_name: str,
    messages: Sequence[tuple[uuid.UUID, list[str]]],
) -> None:
    """Write many ``task_name`` tasks, ``(organization_id, args)`` each, in one statement;
    published after the commit like :func:`enqueue`'s (any session)."""
    if not messages:
        return
    prepared = new_messages(task_name, messages)
    bulk_insert(session, OutboxMessage.__table__, table_rows(prepared))
    after_insert(session, prepared)


def new_messages(task_name: str, messages: Sequence[tuple[uuid.UUID, list[str]]]) -> list[Message]:
    """:func:`enqueue_many`'s messages, not written yet: for a caller that writes their
    :func:`table_rows` in a statement of its own (with other tables' rows), then calls
    :func:`after_insert`."""
    ids = uuid4s(len(messages))
    return [
        Message(i, task_name, list(args), None, None, org)
        for i, (org, args) in zip(ids, messages, strict=True)
    ]


def table_rows(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The ``outbox`` rows of :func:`new_messages`."""
    now = utcnow()
    return [
        {
            "id": m.id,
            "organization_id": m.organization_id,
            "task_name": m.task_name,
            "args": m.args,
            "publish_attempts": 0,
            "created_at": now,
        }
        for m in messages
    ]


def after_insert(session: PlugsSession, messages: Sequence[Message]) -> None:
    """Label ``messages``, whose rows this session's transaction has written, and publish
    them once it commits."""
    if not messages:
        return
    _describe_all(session, messages)
    session.info.setdefault(_PENDING, []).extend(messages)


_PENDING = "outbox_pending"
#: task name -> what labels its messages (registered by the layer that owns the task).
_DESCRIBERS: dict[str, Callable[[PlugsSession, list[Any]], str | None]] = {}
#: task name -> what labels many of its messages at once (one query, not one per message).
_MANY_DESCRIBERS: dict[str, Callable[[PlugsSession, list[list[Any]]], list[str | None]]] = {}
_LABEL = "_outbox_label"  # the label, kept on the message object until it is sent
LABEL_LENGTH = 200


def describe_with(
    task_name: str, describer: Callable[[PlugsSession, list[Any]], str | None]
) -> None:
    """Label ``task_name``'s messages with ``describer(session, args)`` (called when each
    is written, or swept); the label is published as the message's ``kwargsrepr``."""
    _DESCRIBERS[task_name] = describer


def describe_many_with(
    task_name: str, many: Callable[[PlugsSession, list[list[Any]]], list[str | None]]
) -> None:
    """Label the ``task_name`` messages written (:func:`enqueue_many`) or swept together
    with ``many(session, [args, ...])``, one label per args in order: for a label that
    costs a query, so that a tick's thousands of messages do not cost thousands."""
    _MANY_DESCRIBERS[task_name] = many


def _describe_all(session: PlugsSession, messages: Sequence[Outgoing]) -> None:
    """:func:`_describe` each message, through the task's ``many`` describer if it has one."""
    by_task: dict[str, list[Outgoing]] = {}
    for message in messages:
        by_task.setdefault(message.task_name, []).append(message)
    for task_name, group in by_task.items():
        many = _MANY_DESCRIBERS.get(task_name)
        if many is None or len(group) == 1:
            for message in group:
                _describe(session, message)
            continue
        try:
            labels = many(session, [list(m.args) for m in group])
        except Exception:  # noqa: BLE001 - a label is a courtesy; the tasks go out without
            log.warning("could not label %d %s messages", len(group), task_name, exc_info=True)
            continue
        for message, label in zip(group, labels, strict=False):
            if label:
                _set_label(message, label)


def _set_label(message: Outgoing, label: str) -> None:
    if isinstance(message, Message):
        message.label = label[:LABEL_LENGTH]
    else:
        setattr(message, _LABEL, label[:LABEL_LENGTH])


def _describe(session: PlugsSession, message: Outgoing) -> None:
    describer = _DESCRIBERS.get(message.task_name)
    if describer is None:
        return
    try:
        label = describer(session, list(message.args))
    except Exception:  # noqa: BLE001 - a label is a courtesy; the task goes out without it
        log.warning("could not label a %s message", message.task_name, exc_info=True)
        return
    if label:
        _set_label(message, label)


def _publish_committed(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a savepoint: wait for the commit
        return
    messages = session.info.pop(_PENDING, [])
    db, org = session.info.get("database"), session.info.get("organization_id")
    if not messages or db is None:
        return
    if org is None and "system_reason" not in session.info:
        return
    background: ThreadPoolExecutor | None = getattr(_BACKGROUND, "pool", None)
    if background is None:
        _publish_logged(db, org, messages)
    else:  # plain copies: the session's objects stay in this thread
        background.submit(_publish_logged, db, org, [Message.of(m) for m in messages])


def _publish_logged(db: Database, org: uuid.UUID | None, messages: Sequence[Outgoing]) -> None:
    try:
        if org is not None:
            publish(db, org, messages)
        else:  # a system session, e.g. the scheduler: many organizations
            publish_across(db, messages)
    except Exception:  # noqa: BLE001 - committed work is safe; the sweeper publishes it
        log.warning(
            "publishing %d outbox messages failed; the sweeper will", len(messages), exc_info=True
        )


@dataclass(slots=True)
class Message:
    """What publishing needs of an outbox row, detached from any session (many of them
    cost far less than as many ORM objects)."""

    id: uuid.UUID
    task_name: str
    args: list[Any]
    available_at: datetime | None
    label: str | None
    organization_id: uuid.UUID | None = None

    @classmethod
    def of(cls, message: Outgoing) -> Message:
        if isinstance(message, Message):
            return message
        label = getattr(message, _LABEL, None)
        return cls(message.id, message.task_name, list(message.args), message.available_at, label)


Outgoing = OutboxMessage | Message
_BACKGROUND = threading.local()
SWITCH_INTERVAL = 0.0005


@contextmanager
def publishing_in_background() -> Iterator[None]:
    """Within the block, the outbox rows this thread commits are published by one background
    thread while this one goes on (a scheduler tick: a batch's SQL, mostly waiting on
    PostgreSQL, overlaps the previous batch's publishing); the block ends once every one of
    them is published (or left to the sweeper after a failure, as always)."""
    if getattr(_BACKGROUND, "pool", None) is not None:  # nested: the outer block publishes
        yield
        return
    # The publisher is busy in Python; the caller mostly waits on its database.  At the
    # default 5 ms switch interval each answer the caller waits for would also wait for
    # the GIL: a shorter one while both run.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-publish") as pool:
            _BACKGROUND.pool = pool
            try:
                yield
            finally:
                _BACKGROUND.pool = None
    finally:
        sys.setswitchinterval(interval)


def _forget_rolled_back(session: Session, previous: Any = None) -> None:
    if previous is not None and previous.nested:
        # A savepoint rolled back: its rows left the session; the others still commit.
        # (the ones written in bulk are not in the session: the sweeper publishes them)
        kept = [
            m
            for m in session.info.get(_PENDING, [])
            if isinstance(m, OutboxMessage) and m in session
        ]
        session.info[_PENDING] = kept
        return
    session.info.pop(_PENDING, None)


_app: Celery | None = None


def install(app: Celery) -> None:
    """Publish committed outbox rows through ``app`` from now on.

    The Celery application calls this once when it is made (``workers.app``); until then
    rows are written and kept, and the sweeper of a process that has an app publishes them.
    """
    global _app
    _app = app
    for name, listener in (
        ("after_commit", _publish_committed),
        ("after_soft_rollback", _forget_rolled_back),
    ):
        if not event.contains(PlugsSession, name, listener):
            event.listen(PlugsSession, name, listener)


def publish(db: Database, organization_id: uuid.UUID, messages: Iterable[Outgoing]) -> int:
    """Send committed outbox rows that are due now; returns how many were sent."""
    due = _due(messages)
    if not due:
        return 0
    sent = _send(due)
    with db.tenant(organization_id) as session:
        _mark_published(session, sent)
    return len(sent)


def publish_across(db: Database, messages: Iterable[Outgoing]) -> int:
    """:func:`publish` for rows of many organizations (written in a system session)."""
    due = _due(messages)
    if not due:
        return 0
    sent = _send(due)
    with db.system("outbox: mark published after commit") as session:
        _mark_published(session, sent)
    return len(sent)


def sweep(db: Database, *, grace: timedelta = PUBLISH_GRACE) -> int:
    """Publish every outbox row that is due and was not published (any organization)."""
    now = utcnow()
    total = 0
    while True:
        with db.system("outbox sweeper: publish what was not published") as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.published_at.is_(None),
                    or_(
                        OutboxMessage.available_at <= now + PUBLISH_AHEAD,
                        (OutboxMessage.available_at.is_(None))
                        & (OutboxMessage.created_at <= now - grace),
                    ),
                )
                .order_by(OutboxMessage.created_at)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return total
            _describe_all(session, rows)
            _mark_published(session, _send(rows))
            total += len(rows)
            if len(rows) < SWEEP_BATCH:
                return total


def _due(messages: Iterable[Outgoing]) -> list[Outgoing]:
    """The rows to publish now: unparked ones, and parked ones due within PUBLISH_AHEAD."""
    horizon = utcnow() + PUBLISH_AHEAD
    return [m for m in messages if m.available_at is None or m.available_at <= horizon]


#: A publish of more messages than this at once (a scheduler tick's page tasks, a sweep)
#: sends no ``task-sent`` event per message: they cost a third of the publishing.  The
#: trade: Flower lists such a task from when a worker receives it (``task-received``), not
#: as PENDING while it waits in the queue; the outbox row records when it was published.
ANNOUNCE_AT_MOST = 50


class _NoSentEvents:
    """An event dispatcher for :meth:`Celery.send_task` that drops the ``task-sent`` event."""

    def publish(self, *_: Any, **__: Any) -> None:
        return None


def _send(messages: Sequence[Outgoing]) -> list[uuid.UUID]:
    app = _app
    if app is None:
        raise RuntimeError("no Celery app to publish with: workers.app installs one")
    sent = []
    bulk = len(messages) > ANNOUNCE_AT_MOST
    quiet = {"event_dispatcher": _NoSentEvents()} if bulk else {}
    # One connection, and on Redis one pipeline per 500 messages (kombu's publish batch).
    with app.producer_or_acquire() as producer, producer.batch(500):
        plain = _PlainSender(app, producer) if bulk else None
        for message in messages:
            args = list(message.args)
            label = (
                message.label if isinstance(message, Message) else getattr(message, _LABEL, None)
            )
            # ids only: their repr is what Celery's saferepr would make, at less cost
            argsrepr = repr(args) if all(type(a) is str for a in args) else None
            if plain is None or message.available_at is not None or argsrepr is None:
                app.send_task(
                    message.task_name,
                    args=args,
                    argsrepr=argsrepr,
                    task_id=str(message.id),
                    producer=producer,
                    eta=message.available_at,
                    kwargsrepr=label,
                    # not a child of the task that published it: a tick publishing thousands
                    # would carry them all in its request and its stored result
                    add_to_parent=False,
                    **quiet,
                )
            else:
                plain.send(message.task_name, str(message.id), args, argsrepr, label)
            sent.append(message.id)
    return sent


class _PlainSender:
    """Publishes many plain messages (no ETA) of a few task names: what
    :meth:`Celery.send_task` does for each, with the per-name part (the task's own
    options, the route) done once per name, and without the result object and the
    subscription to its result that send_task sets up (nobody waits for an outbox task's
    result).  The message is Celery's own (``create_task_message``), published by
    Celery's own sender (its signals, its retry policy), with no ``task-sent`` event."""

    def __init__(self, app: Celery, producer: Any) -> None:
        self.app, self.producer = app, producer
        self.routes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        parent = app.current_worker_task
        self.parent_id = parent.request.id if parent else None
        self.root_id = (parent.request.root_id or parent.request.id) if parent else None

    def _route(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        known = self.routes.get(name)
        if known is not None:
            return known
        # the registry itself, as send_task reads it (``app.tasks`` would finalize the app)
        task = self.app._tasks.get(name)
        options: dict[str, Any] = {}
        if task is not None:
            options = {k: v for k, v in task._get_exec_options().items() if v is not None}
        header = {
            "time_limit": options.pop("time_limit", None),
            "soft_time_limit": options.pop("soft_time_limit", None),
            "ignore_result": options.pop("ignore_result", None),
        }
        options.pop("expires", None)  # the outbox sets none: rows are published late at times
        options = self.app.amqp.router.route(options, name, None, None, task)
        options.update(event_dispatcher=_NoSentEvents())
        self.routes[name] = (header, options)
        return header, options

    def send(
        self, name: str, task_id: str, args: list[Any], argsrepr: str, label: str | None
    ) -> None:
        header, options = self._route(name)
        amqp = self.app.amqp
        message = amqp.create_task_message(
            task_id,
            name,
            args,
            None,
            reply_to=self.app.thread_oid,
            time_limit=header["time_limit"],
            soft_time_limit=header["soft_time_limit"],
            create_sent_event=False,
            root_id=self.root_id,
            parent_id=self.parent_id,
            ignore_result=header["ignore_result"],
            argsrepr=argsrepr,
            kwargsrepr=label,
            **options,
        )
        amqp.send_task_message(
            self.producer, name, message, argsrepr=argsrepr, kwargsrepr=label, **options
        )


#: One array parameter, not one parameter per id (a statement with 500 parameters costs
#: more to prepare on the client than to run).
_MARK_PUBLISHED_SQL = text(
    "UPDATE outbox SET published_at = :now, publish_attempts = publish_attempts + 1 "
    "WHERE id = ANY(:ids)"
)


def _mark_published(session: PlugsSession, ids: list[uuid.UUID]) -> None:
    if ids and session.get_bind().dialect.name == "postgresql":
        session.execute(_MARK_PUBLISHED_SQL, {"ids": ids, "now": utcnow()})
    elif ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                published_at=utcnow(),
                publish_attempts=OutboxMessage.publish_attempts + 1,
            )
        )
