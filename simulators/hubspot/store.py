"""Records of the HubSpot simulator: one id-ordered store per object type.

Property names and record shapes are HubSpot's (docs/vendors/hubspot.md): property values are
strings or None, timestamps are ISO-8601 with milliseconds and a ``Z``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

CONTACTS = "contacts"
ENGAGEMENTS = ("notes", "meetings", "calls", "emails")
OBJECT_TYPES = (CONTACTS, *ENGAGEMENTS)

#: (created, last modified) property per object type.
CREATED_PROPERTY = {CONTACTS: "createdate"} | {kind: "hs_createdate" for kind in ENGAGEMENTS}
MODIFIED_PROPERTY = {CONTACTS: "lastmodifieddate"} | {k: "hs_lastmodifieddate" for k in ENGAGEMENTS}
#: Properties returned when a request names none.
DEFAULT_PROPERTIES = {CONTACTS: ("email", "firstname", "lastname")} | {k: () for k in ENGAGEMENTS}
#: The association type label HubSpot reports from an engagement to a contact.
ASSOCIATION_TYPE = {
    "notes": "note_to_contact",
    "meetings": "meeting_event_to_contact",
    "calls": "call_to_contact",
    "emails": "email_to_contact",
}
#: Properties compared as instants (epoch-ms string or ISO-8601) by search.
DATE_PROPERTIES = frozenset(
    {
        "createdate",
        "lastmodifieddate",
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_timestamp",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "closedate",
        "notes_last_updated",
    }
)


_EPOCH = datetime(1970, 1, 1)


def iso_ms(epoch_seconds: float) -> str:
    """``2024-05-01T12:00:00.000Z`` for an epoch time in seconds (rounded to the ms)."""
    moment = _EPOCH + timedelta(milliseconds=round(epoch_seconds * 1000))
    return moment.isoformat(timespec="milliseconds") + "Z"


def to_epoch_ms(value: str | float | None) -> int | None:
    """Milliseconds for an epoch-ms number/string or an ISO-8601 date; None if neither."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(slots=True)
class Record:
    """One CRM object: properties plus the envelope fields HubSpot returns."""

    id: int
    properties: dict[str, str | None]
    created_at: str
    updated_at: str
    archived: bool = False
    archived_at: str | None = None
    contact_ids: list[int] = field(default_factory=list)


class ObjectStore:
    """Records of one object type, kept in id order, with an optional unique index.

    ``version`` changes on every write so search results can be cached safely.
    """

    def __init__(self, object_type: str, unique_property: str | None = None) -> None:
        self.object_type = object_type
        self.unique_property = unique_property
        self.records: dict[int, Record] = {}
        self.ids: list[int] = []
        self.index: dict[str, int] = {}
        self.version = 0

    def add(self, record: Record) -> None:
        """Store a new record; ids must arrive in increasing order."""
        self.records[record.id] = record
        self.ids.append(record.id)
        self._index(record)
        self.version += 1

    def get(self, record_id: int, *, archived: bool = False) -> Record | None:
        """The record with this id if its archived flag matches."""
        record = self.records.get(record_id)
        return record if record is not None and record.archived == archived else None

    def find(self, unique_value: str) -> Record | None:
        """The live record whose unique property (e.g. email) equals ``unique_value``."""
        record_id = self.index.get(unique_value.strip().lower())
        return None if record_id is None else self.get(record_id)

    def update(self, record: Record, properties: dict[str, str | None], now: float) -> None:
        """Set properties and bump the modified date and ``updatedAt`` to ``now``."""
        self._unindex(record)
        record.properties.update(properties)
        stamp = iso_ms(now)
        record.properties[MODIFIED_PROPERTY[self.object_type]] = stamp
        record.updated_at = stamp
        self._index(record)
        self.version += 1

    def archive(self, record: Record, now: float) -> None:
        """Move a record to the recycle bin."""
        self._unindex(record)
        record.archived = True
        record.archived_at = record.updated_at = iso_ms(now)
        self.version += 1

    def page(self, after: int, limit: int, *, archived: bool) -> tuple[list[Record], int | None]:
        """Up to ``limit`` records with id >= ``after``, and the id that starts the next page."""
        found: list[Record] = []
        position = bisect.bisect_left(self.ids, after)
        while position < len(self.ids):
            record = self.records[self.ids[position]]
            position += 1
            if record.archived != archived:
                continue
            if len(found) == limit:
                return found, record.id
            found.append(record)
        return found, None

    def live(self) -> Iterator[Record]:
        """Records not archived, in id order."""
        return (record for record in self.records.values() if not record.archived)

    def _index(self, record: Record) -> None:
        if self.unique_property and not record.archived:
            value = record.properties.get(self.unique_property)
            if value:
                self.index[value.strip().lower()] = record.id

    def _unindex(self, record: Record) -> None:
        if self.unique_property:
            value = record.properties.get(self.unique_property)
            if value and self.index.get(value.strip().lower()) == record.id:
                del self.index[value.strip().lower()]


def record_json(
    record: Record,
    object_type: str,
    properties: Sequence[str] | None,
    *,
    associations: bool = False,
) -> dict[str, object]:
    """The API shape of a record with the requested (or default) properties."""
    names: Iterable[str] = properties if properties else DEFAULT_PROPERTIES[object_type]
    always = ("hs_object_id", CREATED_PROPERTY[object_type], MODIFIED_PROPERTY[object_type])
    values = record.properties
    shown = {name: values.get(name) for name in (*names, *always)}
    body: dict[str, object] = {
        "id": str(record.id),
        "properties": shown,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "archived": record.archived,
    }
    if record.archived_at is not None:
        body["archivedAt"] = record.archived_at
    if associations and record.contact_ids:
        kind = ASSOCIATION_TYPE.get(object_type, "contact_to_contact")
        links = [{"id": str(contact), "type": kind} for contact in record.contact_ids]
        body["associations"] = {"contacts": {"results": links}}
    return body


def split_properties(raw: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` as a clean list; None when nothing was asked for."""
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else [str(item) for item in raw]
    names = [item.strip() for item in items if item.strip()]
    return names or None
