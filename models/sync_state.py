"""The tables a sync platform needs beyond docs/erd.md.

* :class:`ExternalId` -- (integration, entity type, external id) -> local row, unique both
  ways; its ``content_hash`` is the hash of the record as last synced either way, which
  makes re-runs write nothing and stops our own write-backs from echoing.
* :class:`SyncCursor` -- per (integration, stream) the incremental watermark committed by
  the last successful run.
* :class:`SyncStreamRun` -- per (run, stream) the page cursor, progress and delivery count
  of a running sync; a killed worker resumes from it.
* :class:`SyncPageOutcome` -- per (run, stream, page) the successes and the failures with
  their reasons, written in the same transaction as the page's rows.  A run's counts are
  sums of these, so a redelivered page task cannot double them.
* :class:`OutboxMessage` -- a task to enqueue, written in the transaction that made it
  necessary, published after commit and again by the sweeper if it was not.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, Json, OrgScoped, Timestamps, enum_column, json_column

#: waiting: for the streams it depends on (e.g. engagements wait for contacts).
STREAM_STATUSES = ("waiting", "pending", "running", "done", "failed")
#: Where the extraction of a staged stream is (:attr:`SyncStreamRun.staging`).
#: abandoned: the extraction failed; the pages staged are loaded, then the stream fails.
STAGING_STATES = ("extracting", "parked", "extracted", "abandoned")


class ExternalId(OrgScoped, Timestamps, Base):
    """A vendor's id for one of our rows, per integration."""

    __tablename__ = "external_ids"
    __referenced__ = False
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("integration_id", "entity_type", "external_id"),
            # local_id first: lookups by external id must not be planned on this index.
            UniqueConstraint("local_id", "integration_id", "entity_type"),
        )

    integration_id: Mapped[uuid.UUID]
    entity_type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(255))
    local_id: Mapped[uuid.UUID]
    content_hash: Mapped[str | None] = mapped_column(String(64))
    #: When the row was last written to the vendor by us (write-back), if ever.
    pushed_at: Mapped[datetime | None]


class SyncCursor(OrgScoped, Timestamps, Base):
    """The incremental watermark of one stream of one integration."""

    __tablename__ = "sync_cursors"
    __referenced__ = False
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("integration_id", "stream"),)

    integration_id: Mapped[uuid.UUID]
    stream: Mapped[str] = mapped_column(String(64))
    state: Mapped[Json] = json_column()


class SyncStreamRun(OrgScoped, Timestamps, Base):
    """One stream of one run: where it is, and how often its current page was delivered."""

    __tablename__ = "sync_stream_runs"
    __org_refs__ = {"run_id": "integration_logs", "integration_id": "integrations"}
    __org_cascade__ = frozenset({"run_id", "integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("run_id", "stream"),
            Index(None, "organization_id", "integration_id", "status"),
        )

    run_id: Mapped[uuid.UUID]
    integration_id: Mapped[uuid.UUID]
    stream: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = enum_column(
        "direction", "pull", "push", nullable=False, default="pull"
    )
    status: Mapped[str] = enum_column("status", *STREAM_STATUSES, nullable=False, default="pending")
    #: Where the next page starts (paginator-specific, JSON); None before the first page.
    page_cursor: Mapped[Json | None]
    #: The incremental state this run started from, and the furthest it has seen.
    start_state: Mapped[Json] = json_column()
    high_water: Mapped[Json] = json_column()
    pages_done: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Full refreshes are fetched and loaded apart (``runs/staged_load.py``): None for a
    #: stream loaded page by page; else extracting, parked (too many pages staged: the
    #: loaders resume it) or extracted (the vendor had no next page).
    staging: Mapped[str | None] = enum_column("staging", *STAGING_STATES)
    #: Pages staged so far (the sequence of the last); ``pages_done`` counts those loaded.
    pages_staged: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Deliveries of the current page; over the cap the stream fails instead of looping.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    #: A parked stream (long Retry-After) resumes then; the stall sweeper leaves it alone.
    resume_at: Mapped[datetime | None]
    #: Since when the current page keeps failing transiently (PLUGS_UNREACHABLE_AFTER).
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None]


class SyncPageOutcome(OrgScoped, CreatedAt, Base):
    """What one page of one stream did: counts and each failure's reason."""

    __tablename__ = "sync_page_outcomes"
    __referenced__ = False
    __org_refs__ = {"run_id": "integration_logs"}
    __org_cascade__ = frozenset({"run_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("run_id", "stream", "page_key"),)

    run_id: Mapped[uuid.UUID]
    stream: Mapped[str] = mapped_column(String(64))
    page_key: Mapped[str] = mapped_column(String(255))
    succeeded: Mapped[int] = mapped_column(default=0, server_default="0")
    failed: Mapped[int] = mapped_column(default=0, server_default="0")
    #: [{"record_id": ..., "reason": ...}] for every failed record of the page.
    failures: Mapped[list[Any]] = json_column(array=True)


class OutboxMessage(OrgScoped, CreatedAt, Base):
    """A task to publish once the transaction that wrote it has committed."""

    __tablename__ = "outbox"
    __referenced__ = False

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "published_at", "available_at"),)

    task_name: Mapped[str] = mapped_column(String(255))
    #: Positional arguments: ids only, never secrets or payloads.
    args: Mapped[list[Any]] = json_column(array=True)
    #: Not before this time (a long Retry-After is parked here, not in a countdown).
    available_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    publish_attempts: Mapped[int] = mapped_column(default=0, server_default="0")


__all__ = [
    "STAGING_STATES",
    "STREAM_STATUSES",
    "ExternalId",
    "OutboxMessage",
    "SyncCursor",
    "SyncPageOutcome",
    "SyncStreamRun",
]
