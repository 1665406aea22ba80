"""Webhook events as member records, laid over what we hold, for the members mapping.

A webhook tells only what changed (an unsubscribe names no tags, a ``profile`` carries
only the merge fields Mailchimp chose to send).  So the record applied is our contact in
the members API's shape (:func:`~connectors.mailchimp.mapping.member_from_contact`) with
the event's fields over it, mapped and upserted exactly like a synced member
(:func:`connectors.upsert.apply_page`).  An event repeating what we hold -- a redelivery,
or the echo of a change we wrote ourselves -- maps to the stored content hash and
changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from connectors.base import JSONDict
from connectors.mailchimp.mapping import MERGE_FIELDS, member_from_contact, subscriber_hash
from core.errors import SkippableRecordError
from models.contacts import Contact
from models.session import Database, PlugsSession
from models.sync_state import ExternalId

#: Webhook types that change a member, and the status each leaves it in (None: unchanged).
MEMBER_EVENTS: dict[str, str | None] = {
    "subscribe": "subscribed",
    "profile": None,
    "unsubscribe": "unsubscribed",
    "cleaned": "cleaned",
    "upemail": None,
}


def member_record(
    session: PlugsSession, integration_id: uuid.UUID, kind: str, data: JSONDict
) -> JSONDict:
    """The member as Mailchimp now holds it, as far as the event and our row tell."""
    if kind == "upemail":
        return _moved(session, integration_id, data)
    email = _text(data, "email")
    member_id = subscriber_hash(email)
    record = _known(session, integration_id, member_id, data)
    record |= {"id": member_id, "email_address": email}
    if str(data.get("web_id") or "").isdigit():
        record["web_id"] = int(data["web_id"])
    merges = data.get("merges")
    if isinstance(merges, dict):
        record["merge_fields"] = dict(record.get("merge_fields") or {}) | {
            tag: merges[tag] for tag in MERGE_FIELDS if isinstance(merges.get(tag), str)
        }
    status = MEMBER_EVENTS[kind]
    if kind == "unsubscribe" and data.get("action") == "delete":
        status = "archived"
    if status is not None:
        record["status"] = status
    return record


def _moved(session: PlugsSession, integration_id: uuid.UUID, data: JSONDict) -> JSONDict:
    """An address change: the link moves from the old member id to the new one."""
    old_email, new_email = _text(data, "old_email"), _text(data, "new_email")
    new_id = str(data.get("new_id") or subscriber_hash(new_email))
    old_link = _link(session, integration_id, subscriber_hash(old_email))
    if old_link is not None and _link(session, integration_id, new_id) is None:
        old_link.external_id = new_id
        session.flush()
    record = _known(session, integration_id, new_id, data)
    return record | {"id": new_id, "email_address": new_email}


def relink_moved_members(
    db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, records: list[JSONDict]
) -> None:
    """Move links to the new member ids of members whose address changed in Mailchimp.

    A new address gives a member a new id (the hash of the address) but keeps its
    ``web_id``; a synced member whose id we do not know but whose ``web_id`` one of our
    contacts carries is that contact, so its link moves before the page is upserted (and
    the contact is updated rather than duplicated).  Idempotent: a moved link is known.
    """
    ids = [str(r["id"]) for r in records if r.get("id")]
    with db.tenant(org_id) as session:
        known = set(
            session.scalars(
                select(ExternalId.external_id).where(
                    ExternalId.integration_id == integration_id,
                    ExternalId.entity_type == Contact.__tablename__,
                    ExternalId.external_id.in_(ids),
                )
            )
        )
        moved = {
            int(r["web_id"]): str(r["id"])
            for r in records
            if r.get("id") and str(r["id"]) not in known and str(r.get("web_id") or "").isdigit()
        }
        if not moved:
            return
        web_id = Contact.metadata_["mailchimp"]["web_id"].as_integer()
        links = session.execute(
            select(ExternalId, web_id)
            .join(Contact, Contact.id == ExternalId.local_id)
            .where(
                ExternalId.integration_id == integration_id,
                ExternalId.entity_type == Contact.__tablename__,
                web_id.in_(list(moved)),
            )
        ).all()
        for link, old_web_id in links:
            link.external_id = moved[old_web_id]


def _known(
    session: PlugsSession, integration_id: uuid.UUID, member_id: str, data: JSONDict
) -> JSONDict:
    link = _link(session, integration_id, member_id)
    contact = None
    if link is not None:
        contact = session.scalars(
            select(Contact)
            .where(Contact.id == link.local_id)
            .execution_options(include_deleted=True)
        ).one_or_none()
    if contact is None:
        return {"status": "subscribed", "list_id": data.get("list_id"), "merge_fields": {}}
    return member_from_contact(contact, data)


def _link(session: PlugsSession, integration_id: uuid.UUID, member_id: str) -> ExternalId | None:
    return session.scalars(
        select(ExternalId).where(
            ExternalId.integration_id == integration_id,
            ExternalId.entity_type == Contact.__tablename__,
            ExternalId.external_id == member_id,
        )
    ).one_or_none()


def _text(data: JSONDict, name: str) -> str:
    value: Any = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SkippableRecordError(f"the event has no data[{name}]")
    return value.strip()
