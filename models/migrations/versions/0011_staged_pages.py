"""staged pages: full refreshes fetched and loaded apart (runs/staged_load.py):
sync_staged_pages holds fetched pages until a load task writes them;
sync_stream_runs.staging and pages_staged track the extraction

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 06:30:00.000000

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models import rls

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STAGING = ("extracting", "parked", "extracted", "abandoned")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "sync_staged_pages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("stream_run_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("page_key", sa.String(length=255), nullable=False),
        sa.Column("records", sa.LargeBinary(), nullable=False),
        sa.Column("record_keys", JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("next_cursor", JSON, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "stream_run_id"],
            ["sync_stream_runs.organization_id", "sync_stream_runs.id"],
            name=op.f("fk_sync_staged_pages_organization_id_stream_run_id_sync_stream_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sync_staged_pages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_staged_pages")),
        sa.UniqueConstraint(
            "stream_run_id", "sequence", name=op.f("uq_sync_staged_pages_stream_run_id_sequence")
        ),
    )
    allowed = ", ".join(f"'{v}'" for v in STAGING)
    with op.batch_alter_table("sync_stream_runs") as batch:
        batch.add_column(sa.Column("staging", sa.String(max(map(len, STAGING))), nullable=True))
        batch.add_column(
            sa.Column("pages_staged", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_check_constraint("staging", f"staging IN ({allowed})")
    if op.get_bind().dialect.name == "postgresql":
        # Staged for seconds and read once: not worth PostgreSQL's CPU to compress.
        op.execute("ALTER TABLE sync_staged_pages ALTER COLUMN records SET STORAGE EXTERNAL")
        for statement in rls.tenant_policy_statements("sync_staged_pages", "organization_id"):
            op.execute(statement)


def downgrade() -> None:
    """Downgrade schema: pages still staged are dropped (their runs cannot finish)."""
    with op.batch_alter_table("sync_stream_runs") as batch:
        batch.drop_constraint(op.f("ck_sync_stream_runs_staging"), type_="check")
        batch.drop_column("pages_staged")
        batch.drop_column("staging")
    op.drop_table("sync_staged_pages")  # its policy, indexes and constraints go with it
