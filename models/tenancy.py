"""The ORM layer of tenant isolation and the soft-delete filter, in one place.

* Every ORM SELECT in a tenant session gets ``organization_id = :org`` on every tenant
  entity it touches (``Organization`` itself: ``id = :org``), through
  ``with_loader_criteria`` -- SQLAlchemy's documented recipe, which also reaches
  relationship and lazy loads.
* Every ORM SELECT hides soft-deleted rows unless the statement was given
  ``execution_options(include_deleted=True)``.
* Before a flush, new tenant rows get the session's organization and every written row is
  checked to belong to it; ``created_by``/``updated_by`` are filled from the acting user.
* On PostgreSQL each transaction of a tenant session starts by setting the token that
  binds it to its organization (transaction-local, signed; :mod:`models.rls`), which the
  row-level security policy checks; that layer holds for raw SQL too.  A savepoint
  inside it is bound already and sets nothing again.  System sessions
  connect as the system role and set nothing.

A session with neither an organization nor a system reason cannot touch tenant data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, false, text
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from core.errors import TenancyError
from models import rls
from models.base import IsDeleted, OrgScoped
from models.organizations import Organization


def organization_of(session: Session) -> uuid.UUID | None:
    """The organization a tenant session works on (None for system sessions)."""
    return session.info.get("organization_id")


def is_system(session: Session) -> bool:
    return "system_reason" in session.info


def _require_context(session: Session) -> None:
    if organization_of(session) is None and not is_system(session):
        raise TenancyError(
            "no organization context: open the session with Database.tenant(org_id), "
            "or Database.system(reason) for cross-organization platform work"
        )


def _add_criteria(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    options = []
    if not state.execution_options.get("include_deleted", False):
        options.append(
            with_loader_criteria(
                IsDeleted, lambda cls: cls.is_deleted == false(), include_aliases=True
            )
        )
    if not _touches_tenant_data(state):
        state.statement = state.statement.options(*options)
        return
    _require_context(state.session)
    org = organization_of(state.session)
    if org is not None:
        options.append(
            with_loader_criteria(
                OrgScoped, lambda cls: cls.organization_id == org, include_aliases=True
            )
        )
        options.append(with_loader_criteria(Organization, lambda cls: cls.id == org))
    state.statement = state.statement.options(*options)


def _touches_tenant_data(state: ORMExecuteState) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, OrgScoped | Organization):
            return True
    return False


def _check_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    org = organization_of(session)
    actor = session.info.get("user_id")
    for obj in session.new:
        if isinstance(obj, OrgScoped | Organization):
            _require_context(session)
        if isinstance(obj, Organization) and obj.id is None and org is not None:
            obj.id = org
        if isinstance(obj, OrgScoped) and obj.organization_id is None:
            if org is None:
                raise TenancyError(f"{type(obj).__name__} needs an organization_id")
            obj.organization_id = org
        if actor is not None and getattr(obj, "created_by", False) is None:
            obj.created_by = actor
    for obj in (*session.new, *session.dirty, *session.deleted):
        owner = _owner(obj)
        if owner is not None and org is not None and owner != org:
            raise TenancyError(
                f"{type(obj).__name__} belongs to another organization than this session's"
            )
    if actor is not None:
        for obj in session.dirty:
            if hasattr(obj, "updated_by") and session.is_modified(obj):
                obj.updated_by = actor


def _owner(obj: object) -> uuid.UUID | None:
    if isinstance(obj, OrgScoped):
        return obj.organization_id
    if isinstance(obj, Organization):
        return obj.id
    return None


def _set_database_context(session: Session, transaction: Any, connection: Any) -> None:
    org = organization_of(session)
    if org is None or connection.dialect.name != "postgresql":
        return
    if transaction.nested:  # a savepoint: its transaction was bound when it began
        return
    token = session.info["database"].tenant_token(org)
    connection.execute(
        text("SELECT set_config(:key, :token, true)"), {"key": rls.TOKEN_SETTING, "token": token}
    )


def install(session_class: type[Session]) -> None:
    """Register the listeners on ``session_class``."""
    event.listen(session_class, "do_orm_execute", _add_criteria)
    event.listen(session_class, "before_flush", _check_writes)
    event.listen(session_class, "after_begin", _set_database_context)
