"""Deterministic seed data for the HubSpot simulator: the same id gives the same person."""

from __future__ import annotations

FIRST_NAMES = ("Jane", "John", "Amara", "Kenji", "Lucia", "Omar", "Priya", "Sven", "Zoe", "Tariq")
LAST_NAMES = ("Doe", "Smith", "Okafor", "Tanaka", "Rossi", "Haddad", "Iyer", "Berg", "Lee", "Khan")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries", "Wayne Enterprises")
JOB_TITLES = ("Engineer", "Marketing Manager", "Sales Lead", "CTO", "Designer", "Analyst")
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
)
LEAD_STATUSES = ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "CONNECTED")
#: Singular and plural names accepted for engagement kinds.
ENGAGEMENT_KINDS = {
    "note": "notes",
    "meeting": "meetings",
    "call": "calls",
    "email": "emails",
} | {plural: plural for plural in ("notes", "meetings", "calls", "emails")}


def _pick(options: tuple[str, ...], number: int) -> str:
    return options[number % len(options)]


def contact_properties(record_id: int, created: str, modified: str) -> dict[str, str | None]:
    """The properties of seeded contact ``record_id`` (email ``contact<id>@example.com``)."""
    first, last = _pick(FIRST_NAMES, record_id), _pick(LAST_NAMES, record_id // 10)
    return {
        "createdate": created,
        "email": f"contact{record_id}@example.com",
        "firstname": first,
        "lastname": last,
        "phone": f"+1555{record_id:07d}",
        "company": _pick(COMPANIES, record_id),
        "jobtitle": _pick(JOB_TITLES, record_id // 3),
        "lifecyclestage": _pick(LIFECYCLE_STAGES, record_id),
        "hs_lead_status": _pick(LEAD_STATUSES, record_id // 2),
        "hs_object_id": str(record_id),
        "lastmodifieddate": modified,
    }


def engagement_properties(kind: str, number: int, timestamp: str) -> dict[str, str | None]:
    """Type-specific default properties of the ``number``-th engagement of ``kind``."""
    defaults: dict[str, dict[str, str | None]] = {
        "notes": {"hs_note_body": f"Note {number}: followed up about the renewal."},
        "meetings": {
            "hs_meeting_title": f"Meeting {number}",
            "hs_meeting_body": "Quarterly review",
            "hs_meeting_start_time": timestamp,
            "hs_meeting_end_time": timestamp,
            "hs_meeting_outcome": "COMPLETED",
        },
        "calls": {
            "hs_call_title": f"Call {number}",
            "hs_call_body": "Discussed onboarding.",
            "hs_call_direction": "OUTBOUND",
            "hs_call_status": "COMPLETED",
            "hs_call_duration": "300000",
        },
        "emails": {
            "hs_email_subject": f"Email {number}",
            "hs_email_text": "Thanks for your time today.",
            "hs_email_direction": "EMAIL",
            "hs_email_status": "SENT",
        },
    }
    return {"hs_timestamp": timestamp} | defaults[kind]
