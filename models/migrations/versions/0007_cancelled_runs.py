"""cancelled runs: integration_logs.status may be 'cancelled' (`plugs runs cancel`);
sync_stream_runs.failing_since: since when a page keeps failing transiently

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:45:00.000000

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BEFORE = ("running", "success", "failed", "partial")
AFTER = (*BEFORE, "cancelled")


def _allow(values: tuple[str, ...], old: tuple[str, ...]) -> None:
    width = max(len(v) for v in values)
    allowed = ", ".join(f"'{v}'" for v in values)
    with op.batch_alter_table("integration_logs") as batch:
        batch.drop_constraint(op.f("ck_integration_logs_status"), type_="check")
        batch.alter_column(
            "status",
            existing_type=sa.String(max(len(v) for v in old)),
            type_=sa.String(width),
            existing_nullable=False,
            existing_server_default="running",
        )
        batch.create_check_constraint("status", f"status IN ({allowed})")


def upgrade() -> None:
    """Upgrade schema."""
    _allow(AFTER, BEFORE)
    with op.batch_alter_table("sync_stream_runs") as batch:
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema: a cancelled run becomes failed."""
    with op.batch_alter_table("sync_stream_runs") as batch:
        batch.drop_column("failing_since")
    op.execute("UPDATE integration_logs SET status = 'failed' WHERE status = 'cancelled'")
    _allow(BEFORE, AFTER)
