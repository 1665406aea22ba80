"""host events: endpoints of the host product, the events pushed to them, each delivery
and each attempt (docs/events.md)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:00:00.000000

"""

from typing import Sequence, Union

from alembic import op

from models import rls
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TENANT_TABLES = ["event_endpoints", "host_events", "event_deliveries", "event_attempts"]
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _timestamps(*, updated: bool = True) -> list[sa.Column]:
    columns = [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        )
    ]
    if updated:
        columns.append(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            )
        )
    return columns


def _org(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _status(name: str, *values: str, default: str) -> sa.Column:
    return sa.Column(
        name,
        sa.Enum(*values, name=name, native_enum=False, create_constraint=True),
        server_default=default,
        nullable=False,
    )


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "event_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("event_types", JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("secret", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.Column("failure_streak", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        _org("event_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_endpoints")),
        sa.UniqueConstraint(
            "organization_id", "id", name=op.f("uq_event_endpoints_organization_id_id")
        ),
    )
    op.create_index(
        op.f("ix_event_endpoints_organization_id_enabled"),
        "event_endpoints",
        ["organization_id", "enabled"],
        unique=False,
    )
    op.create_table(
        "host_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON, server_default=sa.text("'{}'"), nullable=False),
        *_timestamps(updated=False),
        _org("host_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_events")),
        sa.UniqueConstraint(
            "organization_id", "id", name=op.f("uq_host_events_organization_id_id")
        ),
    )
    op.create_index(
        op.f("ix_host_events_organization_id_created_at"),
        "host_events",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        _status("status", "pending", "sending", "succeeded", "failed", default="pending"),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.SmallInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["organization_id", "event_id"],
            ["host_events.organization_id", "host_events.id"],
            name="fk_event_deliveries_event",
            ondelete="CASCADE",
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "endpoint_id"],
            ["event_endpoints.organization_id", "event_endpoints.id"],
            name=op.f("fk_event_deliveries_organization_id_endpoint_id_event_endpoints"),
            ondelete="CASCADE",
        ),
        _org("event_deliveries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint(
            "organization_id", "id", name=op.f("uq_event_deliveries_organization_id_id")
        ),
        sa.UniqueConstraint(
            "event_id", "endpoint_id", name=op.f("uq_event_deliveries_event_id_endpoint_id")
        ),
    )
    op.create_index(
        op.f("ix_event_deliveries_endpoint_id_created_at"),
        "event_deliveries",
        ["endpoint_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_event_deliveries_status_due_at"),
        "event_deliveries",
        ["status", "due_at"],
        unique=False,
    )
    op.create_table(
        "event_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        _status("outcome", "sending", "succeeded", "failed", default="sending"),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("response", sa.String(length=1000), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(updated=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "delivery_id"],
            ["event_deliveries.organization_id", "event_deliveries.id"],
            name=op.f("fk_event_attempts_organization_id_delivery_id_event_deliveries"),
            ondelete="CASCADE",
        ),
        _org("event_attempts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_attempts")),
        sa.UniqueConstraint(
            "delivery_id", "number", name=op.f("uq_event_attempts_delivery_id_number")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            for statement in rls.tenant_policy_statements(table, "organization_id"):
                op.execute(statement)


def downgrade() -> None:
    """Downgrade schema."""
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)  # its policy, indexes and constraints go with it
