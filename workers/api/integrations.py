"""``/integrations``: list, connect (checked with the vendor as `plugs integrations add`
does), show, change, pause, resume, remove and test an organization's integrations;
``/providers``: the installed connectors.  Credentials go in, never out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from connectors import integrations
from connectors.registry import installed
from models.api_keys import ApiKeyIdentity
from models.integrations import Integration
from runs.history import list_runs
from scheduler import schedules
from workers.api.auth import current_key, writable_key
from workers.api.common import Listing, ShortText, Text, db, integration_in
from workers.api.problems import RESPONSES, WRITE_RESPONSES, ProblemError
from workers.api.runs import RunOut, run_out
from workers.api.schedules import ScheduleOut, schedule_out

router = APIRouter(tags=["integrations"], responses=RESPONSES)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]


class IntegrationOut(BaseModel):
    id: uuid.UUID
    provider: str
    integration_type: str
    name: str | None
    status: str = Field(description="connected, disconnected or error")
    is_active: bool = Field(description="false: paused (schedules and webhooks wait)")
    last_sync: datetime | None
    last_error: str | None
    created_at: datetime


class IntegrationDetail(IntegrationOut):
    settings: dict[str, Any] = Field(description="secret-named values are redacted")
    credential_fields: list[str] = Field(description="the credentials' names, never values")
    schedules: list[ScheduleOut]
    recent_runs: list[RunOut]


class IntegrationCreate(BaseModel):
    provider: ShortText = Field(examples=["hubspot"])
    credentials: dict[ShortText, Text] = Field(examples=[{"private_app_token": "pat-na1-..."}])
    settings: dict[ShortText, Text] = Field(default_factory=dict)
    name: ShortText | None = None
    verify: bool = Field(
        default=True,
        description="make one authenticated call to the vendor first; if it fails, "
        "nothing is kept (422 credentials-refused)",
    )


class IntegrationUpdate(BaseModel):
    credentials: dict[ShortText, Text] = Field(
        default_factory=dict, description="merged over the stored ones"
    )
    settings: dict[ShortText, Text] = Field(default_factory=dict)
    unset: list[ShortText] = Field(default_factory=list, description="settings to remove")
    name: ShortText | None = None


class Changed(BaseModel):
    changed: list[str]
    integration: IntegrationOut


class Resumed(BaseModel):
    integration: IntegrationOut
    waiting_webhooks_enqueued: int


class RemovalOut(BaseModel):
    id: uuid.UUID
    schedules_cleared: int
    vendor_subscriptions_deleted: int
    problems: list[str]


class CheckOut(BaseModel):
    ok: bool
    message: str
    seconds: float


def integration_out(row: Integration) -> IntegrationOut:
    metadata = row.metadata_ or {}
    return IntegrationOut(
        id=row.id,
        provider=row.provider,
        integration_type=row.integration_type,
        name=metadata.get("name"),
        status=row.status,
        is_active=row.is_active,
        last_sync=row.last_sync,
        last_error=metadata.get("last_error"),
        created_at=row.created_at,
    )


def _detail(key: ApiKeyIdentity, integration_id: uuid.UUID) -> IntegrationDetail:
    integration_in(key, integration_id)
    view = integrations.describe_integration(db(), integration_id, runs=0)
    found = schedules.list_schedules(db(), key.organization_id, integration_id=integration_id)
    runs = list_runs(
        db(), key.organization_id, integration_id=integration_id, limit=5, details=False
    )
    return IntegrationDetail(
        **integration_out(view.integration).model_dump(),
        settings=view.settings,
        credential_fields=view.credential_fields,
        schedules=[schedule_out(s) for s in found],
        recent_runs=[run_out(r) for r in runs.items],
    )


@router.get("/providers", tags=["providers"])
def list_providers(key: Key) -> list[str]:
    """The installed connectors (what `provider` may be)."""
    return installed()


@router.get("/integrations")
def list_integrations(key: Key) -> Listing[IntegrationOut]:
    """The organization's integrations, oldest first."""
    rows = integrations.list_integrations(db(), key.organization_id)
    return Listing(items=[integration_out(r) for r in rows])


@router.post("/integrations", status_code=201, responses=WRITE_RESPONSES)
def create_integration(body: IntegrationCreate, key: WriteKey) -> IntegrationDetail:
    """Connect the organization to a vendor; the credentials are checked with one
    authenticated call first (unless `verify` is false) and stored encrypted."""
    try:
        created = integrations.add_checked_integration(
            db(),
            key.organization_id,
            body.provider,
            body.credentials,
            body.settings,
            name=body.name,
            verify=body.verify,
        )
    except integrations.CredentialsRefused as exc:
        raise ProblemError("credentials-refused", str(exc)) from None
    return _detail(key, created.id)


@router.get("/integrations/{integration_id}")
def show_integration(integration_id: uuid.UUID, key: Key) -> IntegrationDetail:
    """An integration with its settings (secrets redacted), the names of its
    credentials, its schedules and its last runs."""
    return _detail(key, integration_id)


@router.patch("/integrations/{integration_id}", responses=WRITE_RESPONSES)
def update_integration(
    integration_id: uuid.UUID, body: IntegrationUpdate, key: WriteKey
) -> Changed:
    """Change credentials (merged over the stored ones), settings or the name."""
    integration_in(key, integration_id)
    changed = integrations.update_integration(
        db(),
        integration_id,
        credentials=body.credentials,
        settings=body.settings,
        unset=body.unset,
        name=body.name,
    )
    return Changed(
        changed=changed, integration=integration_out(integration_in(key, integration_id))
    )


@router.post("/integrations/{integration_id}/pause", responses=WRITE_RESPONSES)
def pause_integration(integration_id: uuid.UUID, key: WriteKey) -> IntegrationOut:
    """Pause: schedules stop; webhooks are still received but wait in the inbox."""
    integration_in(key, integration_id)
    schedules.set_active(db(), integration_id, False)
    return integration_out(integration_in(key, integration_id))


@router.post("/integrations/{integration_id}/resume", responses=WRITE_RESPONSES)
def resume_integration(integration_id: uuid.UUID, key: WriteKey) -> Resumed:
    """Resume: schedules go on at their next due time, waiting webhooks are processed."""
    integration_in(key, integration_id)
    waiting = schedules.set_active(db(), integration_id, True)
    return Resumed(
        integration=integration_out(integration_in(key, integration_id)),
        waiting_webhooks_enqueued=waiting,
    )


@router.delete("/integrations/{integration_id}", responses=WRITE_RESPONSES)
def remove_integration(integration_id: uuid.UUID, key: WriteKey) -> RemovalOut:
    """Remove (soft delete): schedules cleared, vendor webhook subscriptions deleted."""
    integration_in(key, integration_id)
    removal = integrations.remove_integration(db(), integration_id)
    return RemovalOut(
        id=integration_id,
        schedules_cleared=removal.schedules,
        vendor_subscriptions_deleted=removal.subscriptions,
        problems=removal.problems,
    )


@router.post("/integrations/{integration_id}/test", responses=WRITE_RESPONSES)
def test_integration(integration_id: uuid.UUID, key: WriteKey) -> CheckOut:
    """One cheap authenticated call to the vendor: ok marks the integration connected,
    refused credentials mark it error (so it needs a key that may write)."""
    integration_in(key, integration_id)
    check = integrations.check_integration(db(), integration_id)
    return CheckOut(ok=check.ok, message=check.message, seconds=round(check.seconds, 3))
