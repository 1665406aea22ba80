"""notification org foreign keys: notifications and notification_deliveries lose their own
foreign key to organizations; the composite (organization_id, user_id) -> users (ON DELETE
CASCADE) already guarantees the organization and deletes the rows with it, and the fan-out
paid one check per inserted row for it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 07:50:00.000000

"""

from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DROPPED = ("notifications", "notification_deliveries")


def upgrade() -> None:
    """Upgrade schema."""
    for table in DROPPED:
        # batch mode: SQLite cannot drop a constraint but copies the table without it
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(
                op.f(f"fk_{table}_organization_id_organizations"), type_="foreignkey"
            )


def downgrade() -> None:
    """Downgrade schema."""
    for table in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                op.f(f"fk_{table}_organization_id_organizations"),
                "organizations",
                ["organization_id"],
                ["id"],
                ondelete="CASCADE",
            )
