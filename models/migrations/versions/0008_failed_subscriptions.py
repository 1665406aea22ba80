"""failed subscriptions: webhook_subscriptions.status may be 'failed' (the vendor refused
to create it; the reason is in last_error and the renewal task tries again)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:50:00.000000

"""

from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BEFORE = ("active", "expired", "removed")
AFTER = (*BEFORE, "failed")


def _allow(values: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{v}'" for v in values)
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.drop_constraint(op.f("ck_webhook_subscriptions_status"), type_="check")
        batch.create_check_constraint("status", f"status IN ({allowed})")


def upgrade() -> None:
    """Upgrade schema."""
    _allow(AFTER)


def downgrade() -> None:
    """Downgrade schema: a failed subscription becomes expired (the renewal recreates it)."""
    op.execute("UPDATE webhook_subscriptions SET status = 'expired' WHERE status = 'failed'")
    _allow(BEFORE)
