"""Connections to vendors and the log of every run against them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    CreatedAt,
    Json,
    OrgScoped,
    SoftDelete,
    Timestamps,
    enum_column,
    json_column,
)

INTEGRATION_TYPES = ("crm", "email", "video", "calendar")
INTEGRATION_STATUSES = ("connected", "disconnected", "error")
OPERATIONS = ("sync", "export", "import", "webhook")
#: ``running`` is ours: a run's row exists from its start, so a crash leaves a trace.
#: ``cancelled``: stopped by an operator (`plugs runs cancel`) at a page boundary.
RUN_STATUSES = ("running", "success", "failed", "partial", "cancelled")


class Integration(OrgScoped, Timestamps, SoftDelete, Base):
    """One organization's connection to one vendor account.

    ``provider`` is hubspot|mailchimp|zoom|teams or a third-party connector's name (connectors
    are plug-ins), so it is not restricted by a CHECK constraint; the connector registry
    validates it.  ``credentials`` only ever holds ciphertext.
    """

    __tablename__ = "integrations"
    __audited__ = True
    __audit_redacted__ = frozenset({"credentials"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "provider"),)

    provider: Mapped[str] = mapped_column(String(64))
    integration_type: Mapped[str] = enum_column(
        "integration_type", *INTEGRATION_TYPES, nullable=False
    )
    credentials: Mapped[Json] = json_column()
    settings: Mapped[Json] = json_column()
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    last_sync: Mapped[datetime | None]
    status: Mapped[str] = enum_column(
        "status", *INTEGRATION_STATUSES, nullable=False, default="disconnected"
    )
    metadata_: Mapped[Json] = json_column("metadata")

    logs: Mapped[list[IntegrationLog]] = relationship(
        back_populates="integration", foreign_keys="IntegrationLog.integration_id", viewonly=True
    )


class IntegrationLog(OrgScoped, CreatedAt, Base):
    """One sync, import, export or webhook run, with its per-record counts."""

    __tablename__ = "integration_logs"
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("records_processed >= 0", name="records_processed"),
            CheckConstraint("records_failed >= 0", name="records_failed"),
            Index(None, "organization_id", "integration_id", "started_at"),
            Index(None, "created_at"),
            # The API's run listing: newest first per organization, keyset-paginated.
            Index(None, "organization_id", "created_at", "id"),
            # Small: only the runs going now (the scheduler's "still running?" check).
            Index(
                "ix_integration_logs_running",
                "integration_id",
                postgresql_where=text("status = 'running'"),
                sqlite_where=text("status = 'running'"),
            ),
        )

    integration_id: Mapped[uuid.UUID] = mapped_column()
    operation: Mapped[str] = enum_column("operation", *OPERATIONS, nullable=False)
    status: Mapped[str] = enum_column("status", *RUN_STATUSES, nullable=False, default="running")
    message: Mapped[str | None]
    request_data: Mapped[Json] = json_column()
    response_data: Mapped[Json] = json_column()
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    records_processed: Mapped[int] = mapped_column(default=0, server_default="0")
    records_failed: Mapped[int] = mapped_column(default=0, server_default="0")
    error_details: Mapped[Json] = json_column()

    integration: Mapped[Integration] = relationship(
        back_populates="logs", foreign_keys=[integration_id]
    )


__all__ = [
    "INTEGRATION_STATUSES",
    "INTEGRATION_TYPES",
    "OPERATIONS",
    "RUN_STATUSES",
    "Integration",
    "IntegrationLog",
]
