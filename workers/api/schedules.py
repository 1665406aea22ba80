"""``/integrations/{id}/schedules``: when an integration syncs (show, set, pause, resume,
clear) -- the functions behind `plugs schedules`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from models.api_keys import ApiKeyIdentity
from models.audit_trail import audit_tables
from scheduler import schedules
from scheduler.schedules import ScheduleView
from scheduler.timing import EVERY_FORMS, Timing
from workers.api.auth import current_key, writable_key
from workers.api.common import Listing, ShortText, db, integration_in
from workers.api.problems import RESPONSES, WRITE_RESPONSES

router = APIRouter(
    prefix="/integrations/{integration_id}/schedules", tags=["schedules"], responses=RESPONSES
)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]


class ScheduleOut(BaseModel):
    schedule: str = Field(examples=["every 15m", "cron '0 * * * *' UTC"])
    active: bool = Field(description="false: the integration is paused")
    next_run_at: datetime
    last_run_at: datetime | None
    last_slot_status: str | None = Field(
        description="skipped, or the status of the run the last slot started"
    )


class ScheduleSet(BaseModel):
    every: ShortText | None = Field(default=None, description=f"an interval: {EVERY_FORMS}")
    cron: ShortText | None = Field(default=None, examples=["0 * * * *"])
    timezone: ShortText | None = Field(default=None, description="IANA time zone of `cron`")
    streams: list[ShortText] = Field(default_factory=list, description="default: all")


class Cleared(BaseModel):
    removed: int


class Active(BaseModel):
    active: bool
    waiting_webhooks_enqueued: int


def schedule_out(view: ScheduleView) -> ScheduleOut:
    return ScheduleOut(
        schedule=view.schedule,
        active=view.active,
        next_run_at=view.next_run_at,
        last_run_at=view.last_run_at,
        last_slot_status=view.last_slot_status,
    )


def _views(key: ApiKeyIdentity, integration_id: uuid.UUID) -> list[ScheduleOut]:
    found = schedules.list_schedules(db(), key.organization_id, integration_id=integration_id)
    return [schedule_out(s) for s in found]


@router.get("")
def show_schedules(integration_id: uuid.UUID, key: Key) -> Listing[ScheduleOut]:
    """The integration's schedules, by next due time."""
    integration_in(key, integration_id)
    return Listing(items=_views(key, integration_id))


@router.put("", responses=WRITE_RESPONSES)
def set_schedule(
    integration_id: uuid.UUID, body: ScheduleSet, key: WriteKey
) -> Listing[ScheduleOut]:
    """Create or replace the schedule of `streams` (an interval or a cron expression);
    it takes effect at the next beat tick."""
    integration_in(key, integration_id)
    timing = Timing.parse(every=body.every, cron=body.cron, timezone=body.timezone)
    audit_tables("sync_schedules")  # not audited by itself; written through the ORM
    schedules.set_schedule(db(), integration_id, timing, streams=body.streams)
    return Listing(items=_views(key, integration_id))


@router.delete("", responses=WRITE_RESPONSES)
def clear_schedules(
    integration_id: uuid.UUID,
    key: WriteKey,
    stream: Annotated[list[ShortText] | None, Query(description="only this stream's")] = None,
) -> Cleared:
    """Remove the integration's schedules (its syncs then run only when asked)."""
    integration_in(key, integration_id)
    removed = schedules.clear_schedules(db(), integration_id, streams=stream or None)
    return Cleared(removed=removed)


def _set_active(key: ApiKeyIdentity, integration_id: uuid.UUID, on: bool) -> Active:
    integration_in(key, integration_id)
    waiting = schedules.set_active(db(), integration_id, on)
    return Active(active=on, waiting_webhooks_enqueued=waiting)


@router.post("/pause", responses=WRITE_RESPONSES)
def pause_schedules(integration_id: uuid.UUID, key: WriteKey) -> Active:
    """Pause the integration's schedules (and its webhook processing: they go together)."""
    return _set_active(key, integration_id, False)


@router.post("/resume", responses=WRITE_RESPONSES)
def resume_schedules(integration_id: uuid.UUID, key: WriteKey) -> Active:
    """Resume: schedules go on at their next due time, waiting webhooks are processed."""
    return _set_active(key, integration_id, True)
