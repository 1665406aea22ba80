"""`plugs api-keys`: an organization's keys of the HTTP API (``/api/v1``)."""

from __future__ import annotations

import uuid

import click

from models.api_keys import create_api_key, list_api_keys, revoke_api_key
from models.session import get_database
from workers.cli.params import UUID


@click.group("api-keys")
def api_keys() -> None:
    """Keys of the HTTP API: each belongs to one organization and sees only its data."""


@api_keys.command("create")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.option("--name", required=True, help="What the key is for (shown by list).")
@click.option("--read-only", is_flag=True, help="The key may read, never change anything.")
@click.option(
    "--rate-limit", type=click.IntRange(min=1), help="Requests per minute (default 1200)."
)
def create(org_id: uuid.UUID, name: str, read_only: bool, rate_limit: int | None) -> None:
    """Make a key and print it: it is shown this once (only its hash is stored)."""
    key, secret = create_api_key(
        get_database(), org_id, name, read_only=read_only, rate_limit=rate_limit
    )
    click.echo(secret)
    access = "read-only" if key.read_only else "read-write"
    click.echo(f"key {key.id} ({access}): store it now, it is not shown again", err=True)


@api_keys.command("list")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
def list_(org_id: uuid.UUID) -> None:
    """The organization's keys: id, prefix, access, created, last used, name (revoked
    ones say when)."""
    for key in list_api_keys(get_database(), org_id):
        access = "read-only" if key.read_only else "read-write"
        used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
        revoked = (
            f"  revoked {key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else ""
        )
        click.echo(
            f"{key.id}  plugs_sk_{key.prefix}_...  {access:<10} "
            f"{key.created_at.isoformat(timespec='seconds')}  used {used}  {key.name}{revoked}"
        )


@api_keys.command("revoke")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.argument("key_id", type=UUID)
def revoke(org_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke KEY_ID at once: its next request is refused (401)."""
    key = revoke_api_key(get_database(), org_id, key_id)
    click.echo(f"revoked {key.id} ({key.name})")


COMMANDS = [api_keys]
