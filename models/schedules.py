"""Per-integration sync schedules, stored as data, and the slots the scheduler claimed.

* :class:`SyncSchedule` -- when an integration syncs: every N seconds, or a cron expression
  in a time zone; for all its streams or for a set of them (one schedule per
  (integration, stream set)).  ``next_run_at`` is the due time of the next slot; the
  beat tick scans it (indexed) and claims due rows ``FOR UPDATE SKIP LOCKED``.
* :class:`ScheduleSlot` -- one row per slot the scheduler acted on, ``UNIQUE (schedule_id,
  slot)``: the guard that makes a second beat (or a redelivered tick) do nothing.  A slot
  is ``started`` (``run_id`` is its run) or ``skipped`` (``reason``: the previous run was
  still going, or the run could not be opened).  ``missed`` counts the earlier slots folded
  into this one after downtime: a schedule runs once, not once per missed slot.

Slots are per schedule: an integration with one schedule (the usual case) has exactly one
slot row per (integration, due time); per-stream schedules of one integration that fall
due at the same moment each keep their own slot, instead of one swallowing the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, OrgScoped, Timestamps, enum_column, json_column

SCHEDULE_KINDS = ("interval", "cron")
SLOT_STATUSES = ("started", "skipped")


class SyncSchedule(OrgScoped, Timestamps, Base):
    """When one integration (or a set of its streams) syncs."""

    __tablename__ = "sync_schedules"
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("integration_id", "streams_key"),
            Index(None, "next_run_at"),
            CheckConstraint(
                "(kind = 'interval' AND every_seconds > 0) OR (kind = 'cron' AND cron IS NOT NULL)",
                name="kind_fields",
            ),
        )

    integration_id: Mapped[uuid.UUID]
    kind: Mapped[str] = enum_column("kind", *SCHEDULE_KINDS, nullable=False)
    every_seconds: Mapped[int | None]
    cron: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: Stream names the runs sync; empty: the integration's default streams.
    streams: Mapped[list[Any]] = json_column(array=True)
    #: The sorted stream names joined by commas ('' for all): one schedule per stream set.
    streams_key: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    #: The run of the last started slot (no foreign key: run retention may delete it).
    last_run_id: Mapped[uuid.UUID | None]
    last_slot_at: Mapped[datetime | None]
    last_slot_status: Mapped[str | None] = mapped_column(String(16))


class ScheduleSlot(OrgScoped, CreatedAt, Base):
    """What the scheduler did with one due slot of one schedule."""

    __tablename__ = "schedule_slots"
    __referenced__ = False
    __org_refs__ = {"schedule_id": "sync_schedules", "integration_id": "integrations"}
    __org_cascade__ = frozenset({"schedule_id", "integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("schedule_id", "slot"),
            Index(None, "integration_id", "slot"),
            Index(None, "created_at"),
        )

    schedule_id: Mapped[uuid.UUID]
    integration_id: Mapped[uuid.UUID]
    #: The due time this slot stands for (not when it was dispatched).
    slot: Mapped[datetime]
    status: Mapped[str] = enum_column("status", *SLOT_STATUSES, nullable=False)
    run_id: Mapped[uuid.UUID | None]
    #: Earlier slots folded into this one (beat was down or late): they had no run of their own.
    missed: Mapped[int] = mapped_column(default=0, server_default="0")
    reason: Mapped[str | None]


__all__ = ["SCHEDULE_KINDS", "SLOT_STATUSES", "ScheduleSlot", "SyncSchedule"]
