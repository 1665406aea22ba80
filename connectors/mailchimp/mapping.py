"""Pure mapping between Mailchimp audience members / campaign activity and our rows (no I/O).

A member is keyed by its subscriber hash (Mailchimp's member ``id``: MD5 of the lower-cased
email), the key every endpoint, report and webhook uses.  Our contact's status, priority
and industry travel as tags with our own prefixes (``status:hot_lead``), so that we only
ever add or remove tags that are ours.  The subscription status lives in
``metadata["mailchimp"]["status"]``; it is Mailchimp's to decide and never written by us.
Vendor facts: docs/vendors/mailchimp.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from connectors.base import JSONDict, MappedRecord
from core.errors import SkippableRecordError
from models.contacts import CONTACT_STATUSES, PRIORITIES

#: Merge field tag -> our contact column.
MERGE_FIELDS = {"FNAME": "first_name", "LNAME": "last_name", "PHONE": "phone", "COMPANY": "company"}
#: Tag prefix -> our contact column; tags with these prefixes are ours to add and remove.
TAG_PREFIXES = {"status:": "status", "priority:": "priority", "industry:": "industry"}
#: Values a tag may carry into a column with a CHECK constraint.
TAG_VALUES: dict[str, tuple[str, ...] | None] = {
    "status": CONTACT_STATUSES,
    "priority": PRIORITIES,
    "industry": None,
}
MEMBER_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
#: Statuses a person (or a bounce) chose: an export never changes them.
COMPLIANCE_STATUSES = ("unsubscribed", "cleaned")
#: The columns the member mapping owns (compared to decide what to write back).
CONTACT_COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "status",
    "priority",
    "industry",
    "metadata_",
)
#: Campaign activity actions we keep; "sent" is one per recipient at the send time.
ACTIONS = ("sent", "open", "click", "bounce")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_time(value: Any) -> datetime | None:
    """A Mailchimp time (ISO-8601 ``2015-10-21T15:41:36+00:00``, or a webhook's
    ``YYYY-MM-DD HH:MM:SS`` in UTC) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def cursor_text(value: Any) -> str | None:
    """A time as the sortable cursor Mailchimp's ``since_*`` parameters take."""
    moment = parse_time(value)
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def valid_email(email: str | None) -> bool:
    """A cheap shape check; Mailchimp has the last word."""
    if not email or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    return bool(local) and "." in domain.strip(".") and " " not in email


def _clean(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip() or None


def _tag_values(tags: list[Any]) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(TAG_PREFIXES.values())
    for tag in tags:
        name = str(tag.get("name") if isinstance(tag, dict) else tag)
        for prefix, column in TAG_PREFIXES.items():
            value = name[len(prefix) :].strip() if name.lower().startswith(prefix) else ""
            allowed = TAG_VALUES[column]
            if value and (allowed is None or value in allowed):
                found[column] = value
    return found


def map_member(record: JSONDict) -> MappedRecord:
    """An audience member as a row of ``contacts``."""
    email = _clean(record.get("email_address"))
    if not valid_email(email):
        raise SkippableRecordError(f"invalid email address {email!r}", record_id=record.get("id"))
    assert email is not None
    merges = record.get("merge_fields") or {}
    values: dict[str, Any] = {
        column: _clean(merges.get(tag)) for tag, column in MERGE_FIELDS.items()
    }
    values["email"] = email.lower()
    values.update(_tag_values(record.get("tags") or []))
    status = str(record.get("status") or "")
    if status not in MEMBER_STATUSES:
        raise SkippableRecordError(f"unknown member status {status!r}", record_id=record.get("id"))
    web_id = str(record.get("web_id") or "")
    member_id = str(record.get("id") or subscriber_hash(email))
    values["metadata_"] = {
        "mailchimp": {
            "id": member_id,
            "web_id": int(web_id) if web_id.isdigit() else None,
            "status": status,
            "list_id": record.get("list_id"),
        }
    }
    return MappedRecord(
        external_id=member_id,
        values={column: values[column] for column in CONTACT_COLUMNS},
        cursor_value=cursor_text(record.get("last_changed")),
    )


def member_tags(row: Any) -> list[str]:
    """The tags our contact should carry (``status:…``, ``priority:…``, ``industry:…``)."""
    return [
        f"{prefix}{getattr(row, column)}"
        for prefix, column in TAG_PREFIXES.items()
        if getattr(row, column, None)
    ]


def merge_fields(row: Any) -> dict[str, str]:
    """Our contact's merge fields; empty columns are left out (they clear nothing)."""
    return {
        tag: str(getattr(row, column))
        for tag, column in MERGE_FIELDS.items()
        if getattr(row, column, None) not in (None, "")
    }


def member_body(row: Any, status_if_new: str) -> JSONDict:
    """The ``PUT /lists/{id}/members/{hash}`` body for our contact.

    No ``status``: an existing member keeps the one they chose (unsubscribed and cleaned
    members stay so); ``status_if_new`` applies only when Mailchimp creates the member.
    ``tags`` are applied by Mailchimp on creation only; existing members get theirs through
    :func:`tag_changes`.
    """
    return {
        "email_address": row.email.strip(),
        "status_if_new": status_if_new,
        "merge_fields": merge_fields(row),
        "tags": member_tags(row),
    }


def tag_changes(current: list[Any], wanted: list[str]) -> list[JSONDict]:
    """``POST …/tags`` items turning the member's tags of ours into ``wanted`` (others kept)."""
    names = {str(t.get("name") if isinstance(t, dict) else t) for t in current}
    ours = {n for n in names if n.lower().startswith(tuple(TAG_PREFIXES))}
    changes = [{"name": name, "status": "active"} for name in wanted if name not in names]
    changes += [{"name": name, "status": "inactive"} for name in sorted(ours - set(wanted))]
    return changes


def member_from_contact(row: Any, known: JSONDict) -> JSONDict:
    """Our contact in the members API's shape (what Mailchimp holds as far as we know), so
    that a partial change (a webhook) can be laid over it and mapped like a synced member."""
    mailchimp = (row.metadata_ or {}).get("mailchimp") or {}
    return {
        "id": mailchimp.get("id") or (subscriber_hash(row.email) if row.email else None),
        "email_address": row.email,
        "status": mailchimp.get("status") or "subscribed",
        "web_id": mailchimp.get("web_id"),
        "list_id": mailchimp.get("list_id") or known.get("list_id"),
        "merge_fields": merge_fields(row),
        "tags": [{"name": name} for name in member_tags(row)],
    }


def map_activity(record: JSONDict) -> MappedRecord:
    """One campaign activity (flattened by the paginator) as a ``contact_interactions`` row."""
    action = str(record.get("action") or "")
    if action not in ACTIONS:
        raise SkippableRecordError(f"unknown activity {action!r}", record_id=record.get("id"))
    subject = _clean(record.get("subject")) or f"campaign {record.get('campaign_id')}"
    detail = _clean(record.get("url")) or _clean(record.get("type"))
    return MappedRecord(
        external_id=str(record["id"]),
        values={
            "interaction_type": "email",
            "subject": f"{action.capitalize()}: {subject}"[:255],
            "description": detail,
            "outcome": action,
            "interaction_date": parse_time(record.get("timestamp")),
            "status": "completed",
            "metadata_": {
                "mailchimp": {
                    "campaign_id": record.get("campaign_id"),
                    "action": action,
                    "email_id": record.get("email_id"),
                }
            },
        },
        references={"contact_id": ("contacts", str(record["email_id"]))},
        cursor_value=cursor_text(record.get("timestamp")),
    )
