"""The schema we were given, read from the copy of erd.md in docs/ (not typed again here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ERD = Path(__file__).resolve().parent.parent / "docs" / "erd.md"
_BLOCK = re.compile(r"^\s{4}([A-Z_]+) \{\n(.*?)^\s{4}\}", re.S | re.M)
_COLUMN = re.compile(r'^\s+(\w+) (\w+)(?: (PK|FK|UK))?(?: "([^"]*)")?\s*$')
_ENUM = re.compile(r"^[a-z_]+(\|[a-z_]+)+$")


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    type: str
    key: str | None
    description: str

    @property
    def enum_values(self) -> tuple[str, ...] | None:
        """The allowed values when the description is an enumeration ("a|b|c")."""
        if _ENUM.match(self.description):
            return tuple(self.description.split("|"))
        return None


def tables() -> dict[str, list[Column]]:
    """Table name -> its columns, in erd.md order."""
    found: dict[str, list[Column]] = {}
    for name, body in _BLOCK.findall(ERD.read_text()):
        table = name.lower()
        columns = []
        for line in body.splitlines():
            match = _COLUMN.match(line)
            if match:
                type_, column, key, description = match.groups()
                columns.append(Column(table, column, type_, key, description or ""))
        found[table] = columns
    return found


def enum_columns() -> list[Column]:
    return [c for cols in tables().values() for c in cols if c.enum_values]
