"""Keyset pagination, newest first: a page is the rows after the cursor's
``(time, id)``, and the cursor is that pair of the page's last row, as an opaque string.

A cursor carries no organization: it only says where to go on in the rows the query
sees, so a cursor taken from another organization's listing shows this one's rows after
that point, never the other's.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from core.errors import PlugsError

#: The largest page a listing returns.
MAX_LIMIT = 200
T = TypeVar("T")
Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


class BadCursor(PlugsError):
    """A cursor this code did not make."""


def encode(moment: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([moment.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        when = datetime.fromisoformat(moment)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor("not a cursor of this listing") from None


def after(
    query: Q,
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> Q:
    """``query`` newest first, from after ``cursor``, one row more than ``limit`` (so
    :func:`cut` knows whether another page follows)."""
    if cursor:
        moment, row_id = decode(cursor)
        query = query.where(
            or_(time_column < moment, and_(time_column == moment, id_column < row_id))
        )
    return query.order_by(time_column.desc(), id_column.desc()).limit(clamp(limit) + 1)


def clamp(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


def cut(rows: Sequence[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """The page and the cursor of the next one (None: this was the last); ``key(row)``
    gives a row's ``(time, id)``."""
    limit = clamp(limit)
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode(*key(page[-1]))
