"""Which events ask for an online meeting, and where: one setting for every video connector.

An event asks in its settings, ``events.settings["meeting_platform"]``, naming the platform
(``"zoom"``, ``"teams"``; compared case-insensitively).  What the platform gives back (join
URL, meeting id) is each connector's to write in ``events.venue_details``; that column says
where the meeting *is*, never what an event asks for.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from models.events import Event

PLATFORM_SETTING = "meeting_platform"


def asks_for(event: Any, platform: str) -> bool:
    """Whether this event's settings ask for a meeting on ``platform``."""
    return str((event.settings or {}).get(PLATFORM_SETTING) or "").lower() == platform


def asking_for(platform: str) -> ColumnElement[bool]:
    """:func:`asks_for` as an SQL condition on ``events`` (an export stream's ``where``)."""
    return func.lower(Event.settings[PLATFORM_SETTING].as_string()) == platform


def closed_here(event: Any) -> bool:
    """Whether the event is cancelled or deleted here.  Its meeting is then deleted by our
    own write-back, so the platform's "meeting deleted" that follows is that deletion's
    echo (or agrees with us): not a change to apply to the event."""
    return bool(event.is_deleted) or event.status == "cancelled"
