"""When schedules fall due: parsing ``every 15m`` and cron expressions, and slot arithmetic.

A schedule is either an interval (``every_seconds``; slots are its anchor plus whole
intervals) or a cron expression evaluated in an IANA time zone (cronsim, which follows
Debian cron across daylight-saving changes).  Times in and out are aware UTC datetimes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

EVERY_FORMS = "every 30s, every 15m, every 2h, every 1d"
_EVERY = re.compile(r"^\s*(?:every\s+)?(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
#: How many missed cron slots are counted one by one after downtime (then it stops counting).
MAX_COUNTED_MISSES = 10_000


def parse_every(text: str) -> int:
    """Seconds of an interval written ``every 15m`` (or ``15m``): s, m, h or d."""
    match = _EVERY.match(text or "")
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0
    if seconds <= 0:
        raise ValueError(f"not an interval: {text!r}; write one of: {EVERY_FORMS}")
    return seconds


def format_every(seconds: int) -> str:
    """``15m`` for 900: the largest unit that divides the interval exactly."""
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; a one-line error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None


def check_cron(expression: str, timezone: str = "UTC") -> None:
    """Refuse a cron expression cronsim cannot evaluate, in one line."""
    try:
        next(CronSim(expression, datetime.now(zone(timezone))))
    except (CronSimError, StopIteration) as exc:
        raise ValueError(
            f"not a cron expression: {expression!r} ({exc or 'never matches'}); "
            "write five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *'"
        ) from None


@dataclass(frozen=True)
class Due:
    """What a due schedule stands for at ``now``: the slot to run (the latest due time),
    how many earlier slots were folded into it, and the next due time (after ``now``)."""

    slot: datetime
    missed: int
    following: datetime


@dataclass(frozen=True)
class Timing:
    """How a schedule repeats: ``every_seconds`` or ``cron`` in ``timezone``."""

    kind: str
    every_seconds: int | None = None
    cron: str | None = None
    timezone: str = "UTC"

    @classmethod
    def parse(
        cls, *, every: str | None = None, cron: str | None = None, timezone: str | None = None
    ) -> Timing:
        """A checked timing from what an operator typed: an interval or a cron expression."""
        if (every is None) == (cron is None):
            raise ValueError(f"give either an interval ({EVERY_FORMS}) or a cron expression")
        if every is not None:
            if timezone not in (None, "UTC"):
                raise ValueError("a time zone only applies to a cron expression")
            return cls("interval", every_seconds=parse_every(every))
        expression = " ".join(str(cron).split())
        check_cron(expression, timezone or "UTC")
        return cls("cron", cron=expression, timezone=timezone or "UTC")

    def first(self, now: datetime) -> datetime:
        """The first due time of a schedule set at ``now``: one interval on (in whole
        seconds), or the cron expression's next time."""
        if self.kind == "interval":
            return now.replace(microsecond=0) + timedelta(seconds=self._every())
        return self._cron_after(now)

    def due(self, next_run_at: datetime, now: datetime) -> Due:
        """The slot a schedule due since ``next_run_at`` runs at ``now``: the latest due
        time, not one per missed slot (the sync covers everything since its cursor)."""
        if self.kind == "interval":
            step = timedelta(seconds=self._every())
            missed = max(0, (now - next_run_at) // step)
            slot = next_run_at + missed * step
            return Due(slot, missed, slot + step)
        try:
            slot = max(self._cron_at_or_before(now), next_run_at)
            return Due(slot, self._cron_count(next_run_at, slot), self._cron_after(max(slot, now)))
        except (CronSimError, StopIteration) as exc:
            raise ValueError(f"cannot evaluate cron {self.cron!r}: {exc}") from None

    def _every(self) -> int:
        if not self.every_seconds or self.every_seconds <= 0:
            raise ValueError("an interval schedule needs every_seconds > 0")
        return self.every_seconds

    def _cron_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(zone(self.timezone))
        return next(CronSim(str(self.cron), local)).astimezone(UTC)

    def _cron_at_or_before(self, moment: datetime) -> datetime:
        # A start with microseconds makes cronsim's reverse walk include the whole second.
        local = moment.astimezone(zone(self.timezone)).replace(microsecond=1)
        return next(CronSim(str(self.cron), local, reverse=True)).astimezone(UTC)

    def _cron_count(self, start: datetime, end: datetime) -> int:
        """Cron times in [start, end): the slots folded into the one at ``end``."""
        if end <= start:
            return 0
        count = 1
        walk = CronSim(str(self.cron), start.astimezone(zone(self.timezone)))
        for moment in walk:
            if moment.astimezone(UTC) >= end or count >= MAX_COUNTED_MISSES:
                break
            count += 1
        return count


def describe(kind: str, every_seconds: int | None, cron: str | None, timezone: str) -> str:
    """``every 15m`` or ``cron '0 * * * *' Europe/Paris``."""
    if kind == "interval":
        return f"every {format_every(every_seconds or 0)}"
    return f"cron '{cron}' {timezone}"
