"""Inserting many rows at once, the fast way each database allows.

On PostgreSQL the rows travel as ONE JSON parameter of one short statement
(``INSERT ... SELECT ... FROM jsonb_populate_recordset(...)``): one round trip, one plan,
and no per-row statement overhead.  :func:`bulk_insert_all` writes several tables in one
statement (data-modifying CTEs), for rows that do not refer to each other.  COPY would be faster still, but PostgreSQL refuses
COPY FROM on tables under row-level security.  Elsewhere it is a plain executemany.

Python-side column defaults are filled in here, since the JSON path bypasses them; values
are checked by the database's constraints (a refused batch raises, and callers that must
isolate bad rows retry them one by one).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from sqlalchemy import ColumnDefault, Table, insert, text
from sqlalchemy.orm import Session

#: Types JSON holds as they are, looked up by exact type first (the common case, and
#: several times cheaper than ``isinstance`` against a union).
_PLAIN = frozenset({str, bool, int, float, type(None)})


def jsonable(value: Any) -> Any:
    """``value`` as something JSON can hold (uuids, times and decimals as strings)."""
    if type(value) in _PLAIN or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (column-name keyed dicts) into ``table`` in this session's transaction."""
    if not rows:
        return
    filled = [_with_defaults(table, row) for row in rows]
    if session.get_bind().dialect.name != "postgresql":
        for shape in _by_shape(filled):
            session.execute(insert(table), shape)
        return
    session.execute(_from_json(table, filled), {"rows": rows_json(filled)})


def bulk_insert_all(session: Session, batches: list[tuple[Table, list[dict[str, Any]]]]) -> None:
    """:func:`bulk_insert` of several tables in one statement and one round trip on
    PostgreSQL (each table's INSERT a data-modifying CTE of one statement, so the rows of
    one table must not refer to rows of another inserted with them); all or nothing."""
    batches = [(table, rows) for table, rows in batches if rows]
    if not batches:
        return
    if session.get_bind().dialect.name != "postgresql" or len(batches) == 1:
        for table, rows in batches:
            bulk_insert(session, table, rows)
        return
    parts, params = [], {}
    for number, (table, rows) in enumerate(batches):
        filled = [_with_defaults(table, row) for row in rows]
        parts.append(_insert_sql(table, filled, f"rows{number}"))
        params[f"rows{number}"] = rows_json(filled)
    ctes = ", ".join(f"w{number} AS ({sql})" for number, sql in enumerate(parts[:-1]))
    session.execute(text(f"WITH {ctes} {parts[-1]}"), params)


def insert_new(
    session: Session, table: Table, rows: list[dict[str, Any]], returning: str
) -> list[Any]:
    """:func:`bulk_insert` that skips rows conflicting with a unique constraint
    (``ON CONFLICT DO NOTHING``); the ``returning`` column of the rows that went in."""
    if not rows:
        return []
    filled = [_with_defaults(table, row) for row in rows]
    if session.get_bind().dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing().returning(table.c[returning])
        return [value for row in filled for value in session.scalars(statement, row)]
    suffix = f' ON CONFLICT DO NOTHING RETURNING "{returning}"'
    return list(session.scalars(_from_json(table, filled, suffix), {"rows": rows_json(filled)}))


def _from_json(table: Table, rows: list[dict[str, Any]], suffix: str = "") -> Any:
    """``INSERT ... SELECT ... FROM jsonb_populate_recordset(:rows)`` for these rows' columns."""
    return text(_insert_sql(table, rows) + suffix)


def _insert_sql(table: Table, rows: list[dict[str, Any]], parameter: str = "rows") -> str:
    columns = sorted({name for row in rows for name in row})
    names = ", ".join(f'"{name}"' for name in columns)
    return (
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
        f'FROM jsonb_populate_recordset(NULL::"{table.name}", CAST(:{parameter} AS jsonb))'
    )


def rows_json(rows: list[dict[str, Any]]) -> str:
    """``rows`` as one JSON array for ``jsonb_populate_recordset``: uuids, times and decimals
    as strings.  orjson writes uuids and times itself (its ``default`` hook sees only the
    rest), several times faster than the standard library's encoder; keys that are not
    plain ``str`` (SQLAlchemy's column names are a subclass) are written as text."""
    try:
        return orjson.dumps(rows, default=_scalar, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an int beyond 64 bits
        return json.dumps(jsonable(rows))


def _scalar(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    filled = dict(row)
    for name, default in _defaults(table):
        if name in filled:
            continue
        filled[name] = default.arg if default.is_scalar else default.arg(None)
    return filled


@cache
def _defaults(table: Table) -> tuple[tuple[str, ColumnDefault], ...]:
    """The Python-side scalar or callable defaults of ``table``'s columns (looked up once:
    walking a table's columns costs more than filling a row)."""
    return tuple(
        (column.name, column.default)
        for column in table.columns
        if isinstance(column.default, ColumnDefault)
        and (column.default.is_scalar or column.default.is_callable)
    )


def _by_shape(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())
