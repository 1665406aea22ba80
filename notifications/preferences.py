"""Whether a user gets a notification on a channel, and when (quiet hours).

Precedence, first match wins: the user's preference for (type, channel), the user's
preference for (``*``, channel), the organization's default for (type, channel), the
organization's default for the channel, else enabled.  Organization defaults live in
``organizations.settings["notifications"]``::

    {"channels": {"sms": false},                    # default per channel
     "types": {"reminder": {"sms": true}},          # per type and channel
     "time_zone": "Europe/Paris",                   # when a user has none
     "quiet_hours": {"start": "22:00", "end": "07:00"}}

Quiet hours (the user's own, else the organization's) are read in the user's time zone
(theirs, else the organization's, else UTC); during them non-urgent messages on channels
they apply to (email, sms, push) are due when they end.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import PlugsError
from models.id_sets import among
from models.notification_delivery import ANY_TYPE, NotificationPreference, NotificationProfile

QuietHours = tuple[time, time]


@dataclass(frozen=True)
class OrgDefaults:
    """The organization's notification defaults (see the module docstring)."""

    channels: dict[str, bool] = field(default_factory=dict)
    types: dict[str, dict[str, bool]] = field(default_factory=dict)
    time_zone: str | None = None
    quiet_hours: QuietHours | None = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> OrgDefaults:
        raw = (settings or {}).get("notifications") or {}
        quiet = raw.get("quiet_hours") or None
        return cls(
            channels={k: bool(v) for k, v in (raw.get("channels") or {}).items()},
            types={
                t: {k: bool(v) for k, v in c.items()} for t, c in (raw.get("types") or {}).items()
            },
            time_zone=raw.get("time_zone"),
            quiet_hours=(parse_time(quiet["start"]), parse_time(quiet["end"])) if quiet else None,
        )


class Preferences:
    """The preferences and profiles of a set of users, loaded in a few queries."""

    def __init__(
        self, session: Session, defaults: OrgDefaults, user_ids: Sequence[uuid.UUID]
    ) -> None:
        self.defaults = defaults
        self._choices: dict[tuple[uuid.UUID, str, str], bool] = {}
        self._profiles: dict[uuid.UUID, NotificationProfile] = {}
        ids = list(user_ids)
        for condition in among(session, NotificationPreference.user_id, ids):
            for pref in session.scalars(select(NotificationPreference).where(condition)):
                self._choices[(pref.user_id, pref.notification_type, pref.channel)] = pref.enabled
        for condition in among(session, NotificationProfile.user_id, ids):
            for profile in session.scalars(select(NotificationProfile).where(condition)):
                self._profiles[profile.user_id] = profile

    @property
    def choosers(self) -> set[uuid.UUID]:
        """The users with a preference of their own (the others get :meth:`default`)."""
        return {user_id for user_id, _, _ in self._choices}

    @property
    def may_hold(self) -> bool:
        """Whether any of these users has quiet hours (theirs or the organization's)."""
        return self.defaults.quiet_hours is not None or any(
            p.quiet_start and p.quiet_end for p in self._profiles.values()
        )

    def enabled(self, user_id: uuid.UUID, notification_type: str, channel: str) -> bool:
        for key in ((user_id, notification_type, channel), (user_id, ANY_TYPE, channel)):
            if key in self._choices:
                return self._choices[key]
        return self.default(notification_type, channel)

    def default(self, notification_type: str, channel: str) -> bool:
        """The organization's choice for users without a preference of their own."""
        typed = self.defaults.types.get(notification_type, {})
        if channel in typed:
            return typed[channel]
        return self.defaults.channels.get(channel, True)

    def due_at(self, user_id: uuid.UUID, now: datetime) -> datetime:
        """``now``, or the end of the user's quiet hours if ``now`` falls within them."""
        profile = self._profiles.get(user_id)
        quiet = self.defaults.quiet_hours
        if profile is not None and profile.quiet_start and profile.quiet_end:
            quiet = (profile.quiet_start, profile.quiet_end)
        if quiet is None:
            return now
        zone = zone_of((profile.time_zone if profile else None) or self.defaults.time_zone)
        return quiet_until(now, quiet, zone) or now


def quiet_until(now: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None if ``now`` is outside them."""
    start, end = quiet
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start == end:
        return None
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise PlugsError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from None


def parse_time(value: str | time) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise PlugsError(f"not a time of day: {value!r} (HH:MM)") from None


def set_preference(
    session: Session,
    user_id: uuid.UUID,
    channel: str,
    enabled: bool,
    notification_type: str = ANY_TYPE,
) -> None:
    """Opt ``user_id`` in or out of ``notification_type`` (``*``: all) on ``channel``."""
    pref = session.scalars(
        select(NotificationPreference).where(
            NotificationPreference.user_id == user_id,
            NotificationPreference.notification_type == notification_type,
            NotificationPreference.channel == channel,
        )
    ).one_or_none()
    if pref is None:
        session.add(
            NotificationPreference(
                user_id=user_id,
                notification_type=notification_type,
                channel=channel,
                enabled=enabled,
            )
        )
    else:
        pref.enabled = enabled


def set_profile(
    session: Session,
    user_id: uuid.UUID,
    *,
    time_zone: str | None = None,
    quiet_hours: tuple[str | time, str | time] | None = None,
) -> None:
    """Set a user's time zone and quiet hours (local ``(start, end)``; None clears them)."""
    if time_zone is not None:
        zone_of(time_zone)
    profile = session.scalars(
        select(NotificationProfile).where(NotificationProfile.user_id == user_id)
    ).one_or_none()
    if profile is None:
        profile = NotificationProfile(user_id=user_id)
        session.add(profile)
    profile.time_zone = time_zone
    start, end = (
        (parse_time(quiet_hours[0]), parse_time(quiet_hours[1])) if quiet_hours else (None, None)
    )
    profile.quiet_start, profile.quiet_end = start, end
