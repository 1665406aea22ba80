"""`plugs org` and `plugs user`."""

from __future__ import annotations

import uuid

import click

from models import accounts
from models.organizations import SUBSCRIPTION_PLANS
from models.session import get_database
from workers.cli.params import UUID


@click.group()
def org() -> None:
    """Organizations (the tenants)."""


@org.command("create")
@click.argument("name")
@click.option("--domain", help="The organization's email domain.")
@click.option("--plan", type=click.Choice(SUBSCRIPTION_PLANS), default="free", show_default=True)
def org_create(name: str, domain: str | None, plan: str) -> None:
    """Create an organization and print its id (a name already taken is refused)."""
    created = accounts.create_organization(
        get_database(), name, domain=domain, plan=plan, unique_name=True
    )
    click.echo(created.id)


@org.command("list")
def org_list() -> None:
    """List organizations: id, plan, name."""
    for organization in accounts.list_organizations(get_database()):
        click.echo(f"{organization.id}  {organization.subscription_plan:<10}  {organization.name}")


@click.group()
def user() -> None:
    """Users of an organization."""


@user.command("create")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.option("--email", required=True)
@click.option("--first-name")
@click.option("--last-name")
@click.option("--job-title")
@click.option("--phone")
@click.option("--admin", is_flag=True, help="Give the user admin privileges.")
def user_create(
    org_id: uuid.UUID,
    email: str,
    first_name: str | None,
    last_name: str | None,
    job_title: str | None,
    phone: str | None,
    admin: bool,
) -> None:
    """Create a user in an organization and print its id."""
    created = accounts.create_user(
        get_database(),
        org_id,
        email,
        first_name=first_name,
        last_name=last_name,
        is_admin=admin,
        job_title=job_title,
        phone=phone,
    )
    click.echo(created.id)


COMMANDS = [org, user]
