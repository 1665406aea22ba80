"""tenant binding: the tenant policy admits only a signed organization; system work has
its own role (BYPASSRLS) instead of a setting any role could set

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

"""

from typing import Sequence, Union

from alembic import op
from sqlalchemy import text

from models import rls

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _policed_tables() -> list[tuple[str, str]]:
    """(table, organization column) of every table under the tenant policy now."""
    names = op.get_bind().execute(
        text(
            "SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation' "
            "AND schemaname = current_schema() ORDER BY tablename"
        )
    )
    return [
        (name, "id" if name == "organizations" else "organization_id") for name in names.scalars()
    ]


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in rls.BINDING:
        op.execute(statement)
    op.get_bind().execute(text(rls.INSERT_KEY), rls.new_key_row())
    for table, column in _policed_tables():
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        for statement in rls.tenant_policy_statements(table, column):
            op.execute(statement)
    op.execute("DROP FUNCTION plugs_system_access()")


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in rls.FUNCTIONS:
        op.execute(statement)
    for table, column in _policed_tables():
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        for statement in rls.policy_statements(table, column):
            op.execute(statement)
    for statement in rls.DROP_BINDING:
        op.execute(statement)
