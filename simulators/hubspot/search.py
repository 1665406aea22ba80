"""The CRM search language of the HubSpot simulator: filters, sorts and full-text query.

Filters in one group are ANDed, groups are ORed (docs/vendors/hubspot.md). Date properties
compare as instants, whether the stored or wanted value is epoch-ms or ISO-8601.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from simulators.hubspot.store import DATE_PROPERTIES, Record, to_epoch_ms

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
#: Properties the free-text ``query`` looks in.
QUERY_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "hs_note_body",
    "hs_meeting_title",
    "hs_call_title",
    "hs_email_subject",
)
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


class SearchError(ValueError):
    """The search body is invalid (HubSpot answers 400 VALIDATION_ERROR)."""


def validate_groups(groups: Any) -> list[list[dict[str, Any]]]:
    """The filter groups as lists of filters, or :class:`SearchError`."""
    if groups is None:
        return []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise SearchError(f"filterGroups must be a list of at most {MAX_GROUPS} groups")
    parsed = [group.get("filters") or [] for group in groups if isinstance(group, dict)]
    if sum(len(filters) for filters in parsed) > MAX_FILTERS:
        raise SearchError(f"at most {MAX_FILTERS} filters are allowed in total")
    for filters in parsed:
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"at most {MAX_FILTERS_PER_GROUP} filters are allowed per group")
        for item in filters:
            if not isinstance(item, dict) or not item.get("propertyName"):
                raise SearchError("every filter needs a propertyName")
            if item.get("operator") not in OPERATORS:
                raise SearchError(f"Unknown operator {item.get('operator')!r}")
    return parsed


def _wanted(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ordinal(name: str, value: Any) -> tuple[int, float | str]:
    """A comparable form: instants for dates, numbers when numeric, else folded text."""
    if name in DATE_PROPERTIES:
        instant = to_epoch_ms(_wanted(value))
        if instant is not None:
            return (0, float(instant))
    text = _wanted(value) or ""
    try:
        return (0, float(text))
    except ValueError:
        return (1, text.casefold())


def _equal(name: str, stored: str, wanted: Any) -> bool:
    if name in DATE_PROPERTIES:
        return _ordinal(name, stored) == _ordinal(name, wanted)
    return stored.casefold() == (_wanted(wanted) or "").casefold()


def _contains_token(stored: str, token: Any) -> bool:
    pattern = re.escape((_wanted(token) or "").casefold()).replace(r"\*", ".*")
    words = re.split(r"[\s@.,;:]+", stored.casefold())
    return any(re.fullmatch(pattern, word) for word in [stored.casefold(), *words])


def _matches(record: Record, item: dict[str, Any]) -> bool:
    name, operator = item["propertyName"], item["operator"]
    stored = record.properties.get(name)
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return (stored not in (None, "")) == (operator == "HAS_PROPERTY")
    if stored is None or stored == "":
        return operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    value = item.get("value")
    if operator in ("EQ", "NEQ"):
        return _equal(name, stored, value) == (operator == "EQ")
    if operator in ("IN", "NOT_IN"):
        hit = any(_equal(name, stored, wanted) for wanted in item.get("values") or [])
        return hit == (operator == "IN")
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        return _contains_token(stored, value) == (operator == "CONTAINS_TOKEN")
    return _in_range(name, stored, operator, item)


def _in_range(name: str, stored: str, operator: str, item: dict[str, Any]) -> bool:
    have = _ordinal(name, stored)
    low = _ordinal(name, item.get("value"))
    if have[0] != low[0]:
        return False
    if operator == "BETWEEN":
        high = _ordinal(name, item.get("highValue"))
        return have[0] == high[0] and low <= have <= high
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    return checks[operator](have, low)


def _matches_query(record: Record, query: str) -> bool:
    needle = query.casefold()
    values = (record.properties.get(name) for name in QUERY_PROPERTIES)
    return any(needle in value.casefold() for value in values if value)


def search(
    records: Iterable[Record],
    groups: list[list[dict[str, Any]]],
    sorts: Any,
    query: str | None,
) -> list[Record]:
    """Records matching any group (all filters of it) and ``query``, sorted as asked."""
    found = [
        record
        for record in records
        if (not groups or any(all(_matches(record, f) for f in group) for group in groups))
        and (not query or _matches_query(record, query))
    ]
    for name, descending in reversed(_sort_keys(sorts)):
        found.sort(key=lambda record: _sort_value(record, name), reverse=descending)
    return found


def _sort_keys(sorts: Any) -> list[tuple[str, bool]]:
    """``[{propertyName, direction}]`` or ``["-name"]`` as (name, descending) pairs."""
    keys: list[tuple[str, bool]] = []
    for item in sorts or []:
        if isinstance(item, str):
            keys.append((item.lstrip("-"), item.startswith("-")))
        elif isinstance(item, dict) and item.get("propertyName"):
            direction = str(item.get("direction") or "ASCENDING").upper()
            keys.append((item["propertyName"], direction == "DESCENDING"))
        else:
            raise SearchError("sorts must name a propertyName")
    return keys


def _sort_value(record: Record, name: str) -> tuple[int, float | str]:
    value = record.properties.get(name)
    if value in (None, ""):
        return (2, "")
    return _ordinal(name, value)
