"""A condition that a column holds one of many ids, the cheap way each database allows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Text, any_, bindparam, cast
from sqlalchemy.orm import Session
from sqlalchemy.types import ARRAY, Uuid

#: Ids in one ``IN`` list where there are no arrays (SQLite allows 32,766 parameters).
CHUNK = 5000


def among(session: Session, column: Any, ids: Sequence[uuid.UUID]) -> list[ColumnElement[bool]]:
    """Conditions, each selecting rows whose ``column`` is one of ``ids`` (run one query
    per condition and join the results).  On PostgreSQL there is one: ``column = ANY(...)``
    with the ids as one array parameter, because a 500-id ``IN`` list cost more to build
    and bind than the query.  Elsewhere ``IN`` lists of up to :data:`CHUNK` ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        literal = "{" + ",".join(str(i) for i in ids) + "}"
        return [column == any_(cast(bindparam(None, literal, type_=Text()), ARRAY(Uuid())))]
    return [column.in_(ids[start : start + CHUNK]) for start in range(0, len(ids), CHUNK)]
