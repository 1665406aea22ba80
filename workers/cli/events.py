"""`plugs events`: the endpoints of the host product that receive an organization's
events (docs/events.md), the events sent, and replays."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import click

from workers.cli.params import UUID

_WHEN = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"])


@click.group("events")
def events() -> None:
    """Events pushed to the host product: endpoints, what was sent, replays."""


@events.group("endpoints")
def endpoints_group() -> None:
    """The URLs that receive an organization's events, signed (Standard Webhooks)."""


def _types(value: str) -> list[str]:
    return [t for t in value.split(",") if t.strip()]


@endpoints_group.command("add")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.option("--url", required=True, help="https URL of the host product's receiver.")
@click.option(
    "--events", "event_types", required=True, help="Comma-separated types, e.g. run.failed."
)
@click.option("--description", help="What it is for (shown in listings).")
def add(org_id: uuid.UUID, url: str, event_types: str, description: str | None) -> None:
    """Register an endpoint; prints its id and its signing secret (shown only now)."""
    from events.endpoints import add_endpoint
    from models.session import get_database

    endpoint, secret = add_endpoint(
        get_database(), org_id, url, _types(event_types), description=description
    )
    click.echo(f"endpoint {endpoint.id}")
    click.echo(f"signing secret (shown once, keep it): {secret}")


@endpoints_group.command("list")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
def list_endpoints(org_id: uuid.UUID) -> None:
    """Id, state, URL, event types and description of each endpoint."""
    from events.endpoints import list_endpoints as listed
    from models.session import get_database

    for e in listed(get_database(), org_id):
        state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
        line = f"{e.id}  {state}  {e.url}  {','.join(e.event_types)}"
        click.echo(line + (f"  {e.description}" if e.description else ""))


def _set(endpoint_id: uuid.UUID, enabled: bool) -> None:
    from events.endpoints import set_enabled
    from events.history import organization_of_endpoint
    from models.session import get_database

    db = get_database()
    endpoint = set_enabled(db, organization_of_endpoint(db, endpoint_id), endpoint_id, enabled)
    click.echo(f"endpoint {endpoint.id} {'enabled' if endpoint.enabled else 'disabled'}")


@endpoints_group.command("disable")
@click.argument("endpoint_id", type=UUID)
def disable(endpoint_id: uuid.UUID) -> None:
    """Stop sending events to an endpoint (deliveries due meanwhile fail)."""
    _set(endpoint_id, False)


@endpoints_group.command("enable")
@click.argument("endpoint_id", type=UUID)
def enable(endpoint_id: uuid.UUID) -> None:
    """Send events to an endpoint again (its failure streak is forgotten)."""
    _set(endpoint_id, True)


@endpoints_group.command("remove")
@click.argument("endpoint_id", type=UUID)
def remove(endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint and its delivery log."""
    from events.endpoints import remove_endpoint
    from events.history import organization_of_endpoint
    from models.session import get_database

    db = get_database()
    remove_endpoint(db, organization_of_endpoint(db, endpoint_id), endpoint_id)
    click.echo(f"endpoint {endpoint_id} removed")


@endpoints_group.command("rotate-secret")
@click.argument("endpoint_id", type=UUID)
def rotate_secret(endpoint_id: uuid.UUID) -> None:
    """Give an endpoint a new signing secret; prints it (shown only now)."""
    from events.endpoints import rotate_secret as rotate
    from events.history import organization_of_endpoint
    from models.session import get_database

    db = get_database()
    secret = rotate(db, organization_of_endpoint(db, endpoint_id), endpoint_id)
    click.echo(f"signing secret (shown once, keep it): {secret}")


@events.command("list")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.option("--type", "event_type", help="Only events of this type.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="Print the payloads too, as JSON lines.")
def list_events(org_id: uuid.UUID, event_type: str | None, limit: int, as_json: bool) -> None:
    """The newest events: id, time, type, and each delivery's state."""
    from events.history import list_events as listed
    from models.session import get_database

    events, _ = listed(get_database(), org_id, event_type=event_type, limit=limit)
    for e in events:
        states = ", ".join(f"{d.status}/{d.attempts}" for d in e.deliveries) or "no delivery"
        if as_json:
            record = {
                "id": str(e.id),
                "type": e.event_type,
                "created_at": e.created_at.isoformat(),
                "deliveries": states,
                "data": e.payload,
            }
            click.echo(json.dumps(record))
        else:
            click.echo(f"{e.id}  {e.created_at:%Y-%m-%d %H:%M:%S}  {e.event_type}  {states}")


@events.command("replay")
@click.argument("event_id", type=UUID, required=False)
@click.option("--org", "org_id", type=UUID, help="With --failed-since: the organization.")
@click.option("--failed-since", type=_WHEN, help="Every failed delivery since then (UTC).")
def replay(
    event_id: uuid.UUID | None, org_id: uuid.UUID | None, failed_since: datetime | None
) -> None:
    """Send an event again (EVENT_ID), or every failed delivery since a time (--org,
    --failed-since), with a fresh retry schedule and the same webhook-id."""
    from events import delivery
    from events.history import organization_of_event
    from models.session import get_database

    db = get_database()
    if event_id is not None:
        count = delivery.replay_event(db, organization_of_event(db, event_id), event_id)
    elif org_id is not None and failed_since is not None:
        count = delivery.replay_failed(db, org_id, failed_since.replace(tzinfo=UTC))
    else:
        raise click.UsageError("name an EVENT_ID, or --org and --failed-since")
    click.echo(f"{count} deliveries enqueued")


COMMANDS = [events]
