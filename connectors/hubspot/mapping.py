"""Pure mapping between HubSpot CRM records and our rows (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connectors.base import JSONDict, MappedRecord
from core.errors import SkippableRecordError

#: The contact properties we read (and write back).
CONTACT_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "jobtitle",
    "lifecyclestage",
    "hs_lead_status",
    "industry",
    "lastmodifieddate",
    "createdate",
)
#: HubSpot lifecycle stage -> our contacts.status.
LIFECYCLE_STATUS = {
    "customer": "existing_client",
    "evangelist": "existing_client",
    "opportunity": "hot_lead",
    "salesqualifiedlead": "hot_lead",
    "marketingqualifiedlead": "cold_lead",
    "lead": "cold_lead",
    "subscriber": "cold_lead",
}
#: Our status -> lifecycle stage, for write-back (new_client has no stage of its own).
STATUS_LIFECYCLE = {"existing_client": "customer", "hot_lead": "opportunity", "cold_lead": "lead"}
#: The columns of ours the contact mapping owns (compared to decide what to write back).
CONTACT_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "job_title",
    "industry",
    "status",
    "priority",
    "metadata_",
)
#: HubSpot lead status -> our contacts.priority.
LEAD_STATUS_PRIORITY = {
    "IN_PROGRESS": "high",
    "OPEN_DEAL": "high",
    "CONNECTED": "high",
    "NEW": "medium",
    "OPEN": "medium",
    "ATTEMPTED_TO_CONTACT": "medium",
    "UNQUALIFIED": "low",
    "BAD_TIMING": "low",
}
#: Engagement object -> (our interaction_type, subject property, body property).
ENGAGEMENTS = {
    "notes": ("follow_up", None, "hs_note_body"),
    "meetings": ("meeting", "hs_meeting_title", "hs_meeting_body"),
    "calls": ("call", "hs_call_title", "hs_call_body"),
    "emails": ("email", "hs_email_subject", "hs_email_text"),
}


def parse_time(value: Any) -> datetime | None:
    """A HubSpot date value (ISO-8601 or epoch milliseconds) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    return datetime.fromisoformat(text).astimezone(UTC)


#: The form of a cursor, which HubSpot's own dates already have.
_CURSOR_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def cursor_text(value: Any) -> str | None:
    """A date value as a sortable cursor string (ISO-8601 UTC with milliseconds)."""
    if type(value) is str and _CURSOR_SHAPE.fullmatch(value):  # already that form
        datetime.fromisoformat(value)  # an impossible date is refused as parse_time does
        return value
    moment = parse_time(value)
    return (
        None
        if moment is None
        else moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _clean(value: Any) -> str | None:
    if type(value) is str:
        return value.strip() or None
    return None if value is None else str(value).strip() or None


def map_contact(record: JSONDict) -> MappedRecord:
    """A HubSpot contact as a row of ``contacts``."""
    properties = record.get("properties") or {}
    email = _clean(properties.get("email"))
    if email is not None and (
        email.count("@") != 1 or email.startswith("@") or email.endswith("@")
    ):
        raise SkippableRecordError(f"invalid email address {email!r}", record_id=record.get("id"))
    values = {
        "first_name": _clean(properties.get("firstname")),
        "last_name": _clean(properties.get("lastname")),
        "email": email.lower() if email else None,
        "phone": _clean(properties.get("phone")),
        "company": _clean(properties.get("company")),
        "job_title": _clean(properties.get("jobtitle")),
        "industry": _clean(properties.get("industry")),
        "status": LIFECYCLE_STATUS.get(str(properties.get("lifecyclestage") or "").lower()),
        "priority": LEAD_STATUS_PRIORITY.get(str(properties.get("hs_lead_status") or "").upper()),
        "metadata_": {
            "hubspot": {
                "id": str(record["id"]),
                "lifecyclestage": properties.get("lifecyclestage"),
                "hs_lead_status": properties.get("hs_lead_status"),
            }
        },
    }
    return MappedRecord(
        external_id=str(record["id"]),
        values=values,
        deleted=bool(record.get("archived")),
        cursor_value=cursor_text(properties.get("lastmodifieddate") or record.get("updatedAt")),
    )


def contact_properties(row: Any) -> JSONDict:
    """Our contact as HubSpot properties, for write-back (only what we own)."""
    properties = {
        "email": row.email,
        "firstname": row.first_name,
        "lastname": row.last_name,
        "phone": row.phone,
        "company": row.company,
        "jobtitle": row.job_title,
        "industry": row.industry,
    }
    if row.status in STATUS_LIFECYCLE:
        properties["lifecyclestage"] = STATUS_LIFECYCLE[row.status]
    return {k: v for k, v in properties.items() if v is not None}


def engagement_mapper(kind: str) -> Callable[[JSONDict], MappedRecord]:
    """The mapper of one engagement object type (notes, meetings, calls, emails)."""
    interaction_type, subject_property, body_property = ENGAGEMENTS[kind]

    def map_engagement(record: JSONDict) -> MappedRecord:
        properties = record.get("properties") or {}
        contacts = ((record.get("associations") or {}).get("contacts") or {}).get("results") or []
        if not contacts:
            raise SkippableRecordError(
                f"{kind[:-1]} {record.get('id')} is associated with no contact",
                record_id=record.get("id"),
            )
        subject = _clean(properties.get(subject_property)) if subject_property else None
        body = _clean(properties.get(body_property))
        return MappedRecord(
            external_id=str(record["id"]),
            values={
                "interaction_type": interaction_type,
                "subject": (subject or (body or "")[:120] or None),
                "description": body,
                "outcome": _clean(
                    properties.get("hs_meeting_outcome") or properties.get("hs_call_disposition")
                ),
                "interaction_date": parse_time(properties.get("hs_timestamp")),
                "status": "completed",
                "metadata_": {"hubspot": {"id": str(record["id"]), "type": kind}},
            },
            references={"contact_id": ("contacts", str(contacts[0]["id"]))},
            deleted=bool(record.get("archived")),
            cursor_value=cursor_text(
                properties.get("hs_lastmodifieddate") or record.get("updatedAt")
            ),
        )

    return map_engagement
