"""Creating and listing organizations and users: the operations behind `plugs org` and
`plugs user`, with errors an operator can act on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.errors import NotFoundError, PlugsError
from models.organizations import SUBSCRIPTION_PLANS, Organization, User
from models.session import Database


class DuplicateError(PlugsError):
    """A row with the same unique key already exists."""


def create_organization(
    db: Database,
    name: str,
    *,
    domain: str | None = None,
    plan: str = "free",
    unique_name: bool = False,
) -> Organization:
    """A new organization; ``plan`` is one of free|pro|enterprise.  With ``unique_name``
    (what an operator asks for) a name another organization has, in any letter case, is
    refused."""
    if not name.strip():
        raise PlugsError("an organization needs a name")
    if plan not in SUBSCRIPTION_PLANS:
        raise PlugsError(f"unknown plan {plan!r}; choose one of {', '.join(SUBSCRIPTION_PLANS)}")
    if unique_name:
        same = organization_named(db, name)
        if same is not None:
            raise DuplicateError(f"organization {same.id} is already named {same.name!r}")
    org_id = uuid.uuid4()
    with db.tenant(org_id) as session:
        org = Organization(id=org_id, name=name.strip(), domain=domain, subscription_plan=plan)
        session.add(org)
    return org


def list_organizations(db: Database) -> Sequence[Organization]:
    """Every organization that is not deleted, by name (a cross-tenant, operator view)."""
    with db.system("plugs org list") as session:
        return session.scalars(select(Organization).order_by(Organization.name)).all()


def organization_named(db: Database, name: str) -> Organization | None:
    """The organization (not deleted) called ``name``, in any letter case, or None."""
    wanted = name.strip().lower()
    with db.system("plugs org create: is the name taken") as session:
        return session.scalars(
            select(Organization).where(func.lower(Organization.name) == wanted).limit(1)
        ).first()


def get_user(db: Database, org_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """The user ``user_id`` of ``org_id``; NotFoundError when it is not one of its users."""
    get_organization(db, org_id)
    with db.tenant(org_id) as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFoundError(f"no user {user_id} in organization {org_id}")
        return user


def get_organization(db: Database, org_id: uuid.UUID) -> Organization:
    with db.tenant(org_id) as session:
        org = session.get(Organization, org_id)
        if org is None:
            raise NotFoundError(f"no organization with id {org_id}")
        return org


def create_user(
    db: Database,
    org_id: uuid.UUID,
    email: str,
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    is_admin: bool = False,
    job_title: str | None = None,
    phone: str | None = None,
) -> User:
    """A new user of ``org_id``; the email must be unused in that organization."""
    get_organization(db, org_id)
    try:
        with db.tenant(org_id) as session:
            user = User(
                email=email,
                first_name=first_name,
                last_name=last_name,
                is_admin=is_admin,
                job_title=job_title,
                phone=phone,
            )
            session.add(user)
    except IntegrityError as exc:
        if "email" in str(exc.orig):
            raise DuplicateError(
                f"{email.strip().lower()} is already a user of organization {org_id}"
            ) from None
        raise
    return user
