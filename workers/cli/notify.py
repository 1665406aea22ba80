"""`plugs notify`: fan a notification out; `plugs feed-token`: open a user's in-app feed."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import click

from models.accounts import get_user
from models.base import utcnow
from models.notifications import NOTIFICATION_TYPES
from models.session import get_database
from notifications import Audience, Content, send
from notifications.feed_tokens import issue
from notifications.recipients import ROLES
from workers.cli.params import UUID

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Duration(click.ParamType):
    """``30m``, ``2h``, ``2d``, ``1w``."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match or int(match.group(1)) == 0:
            self.fail(f"{value!r} is not a duration like 30m, 2h, 2d or 1w", param, ctx)
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.command("notify")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization.")
@click.option("--user", "user_ids", type=UUID, multiple=True, help="A recipient (repeatable).")
@click.option("--role", type=click.Choice(ROLES), help="Every admin, or every member.")
@click.option("--event", "event_id", type=UUID, help="The attendees of this event.")
@click.option(
    "--type",
    "notification_type",
    type=click.Choice(NOTIFICATION_TYPES),
    default="info",
    show_default=True,
)
@click.option("--title", required=True)
@click.option("--message", required=True)
@click.option(
    "--channels",
    default="in_app",
    show_default=True,
    help="Comma-separated: in_app,email,sms,push.",
)
@click.option("--expires-in", type=Duration(), help="Not sent after this long, e.g. 2d.")
@click.option("--key", help="Idempotency key: the same key reaches each user and channel once.")
@click.option("--urgent", is_flag=True, help="Do not wait for the end of quiet hours.")
def notify(
    org_id: uuid.UUID,
    user_ids: tuple[uuid.UUID, ...],
    role: str | None,
    event_id: uuid.UUID | None,
    notification_type: str,
    title: str,
    message: str,
    channels: str,
    expires_in: timedelta | None,
    key: str | None,
    urgent: bool,
) -> None:
    """Send a notification to users, a role or an event's attendees; prints the counts."""
    audience = Audience(user_ids=user_ids, role=role, event_id=event_id)
    content = Content(
        title=title,
        message=message,
        notification_type=notification_type,
        channels=tuple(c.strip() for c in channels.split(",") if c.strip()),
        expires_at=utcnow() + expires_in if expires_in else None,
        key=key,
        urgent=urgent,
    )
    result = send(get_database(), org_id, audience, content)
    click.echo(
        f"{result.created} notifications to {result.recipients} recipients "
        f"({result.duplicates} duplicates skipped, {result.opted_out} opted out, "
        f"{result.unreachable} unreachable, {result.deferred} held for quiet hours) "
        f"in {result.batches} delivery batches"
    )


@click.command("feed-token")
@click.option("--org", "org_id", type=UUID, required=True)
@click.option("--user", "user_id", type=UUID, required=True)
@click.option("--ttl", type=Duration(), default="1h", show_default=True, help="Valid this long.")
def feed_token(org_id: uuid.UUID, user_id: uuid.UUID, ttl: timedelta) -> None:
    """Print a token that opens USER's in-app feed (GET /feed, /feed/stream)."""
    get_user(get_database(), org_id, user_id)  # no token for someone who is not there
    click.echo(issue(org_id, user_id, ttl=int(ttl.total_seconds())))


COMMANDS = [notify, feed_token]
