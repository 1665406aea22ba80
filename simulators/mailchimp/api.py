"""The Marketing 3.0 endpoints of the Mailchimp simulator over its in-memory state.

:class:`AudienceApi` answers requests that already passed auth and the connection limit;
the simulator holds its lock around it.  Shapes and errors are Mailchimp's
(docs/vendors/mailchimp.md): collections ``{<items>, total_items, _links}``,
``offset``/``count`` paging (``count`` at most 1000), ``application/problem+json`` errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()


PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
MAX_COUNT = 1000
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ROUTES = (
    ("GET", re.compile(r"^/3\.0/ping$"), "ping"),
    ("GET", re.compile(r"^/3\.0/lists/(?P<audience>[^/]+)$"), "get_list"),
    ("GET", re.compile(r"^/3\.0/lists/(?P<audience>[^/]+)/members$"), "list_members"),
    (
        "GET",
        re.compile(r"^/3\.0/lists/(?P<audience>[^/]+)/members/(?P<member>[^/]+)$"),
        "get_member",
    ),
    (
        "PUT",
        re.compile(r"^/3\.0/lists/(?P<audience>[^/]+)/members/(?P<member>[^/]+)$"),
        "put_member",
    ),
    (
        "POST",
        re.compile(r"^/3\.0/lists/(?P<audience>[^/]+)/members/(?P<member>[^/]+)/tags$"),
        "tags",
    ),
    ("GET", re.compile(r"^/3\.0/campaigns$"), "list_campaigns"),
    ("GET", re.compile(r"^/3\.0/reports/(?P<campaign>[^/]+)/email-activity$"), "email_activity"),
)


class Problem(Exception):
    """A request Mailchimp refuses: becomes an ``application/problem+json`` answer."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    """Mailchimp's error body: type, title, status, detail, instance (+ ``errors``)."""
    instance = str(uuid.uuid4())
    body = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    body |= {"instance": instance} | extra
    content = json.dumps(body).encode()
    base = {"Content-Type": "application/problem+json; charset=utf-8", "X-Request-Id": instance}
    return httpx.Response(status, headers=base | (headers or {}), content=content)


def json_response(status: int, body: object) -> httpx.Response:
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Request-Id": str(uuid.uuid4())}
    return httpx.Response(status, headers=headers, content=content)


def stamp(epoch: float) -> str:
    """``2024-05-01T12:34:56+00:00`` (Mailchimp's resolution is the second)."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).isoformat()


def _epoch(value: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "Invalid Resource", f"{name}: not a valid time {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class Campaign:
    id: str
    list_id: str
    subject: str
    send_time: float
    #: email_id -> {"email_address", "activity": [{action, timestamp, url?, type?}]}
    recipients: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class AudienceState:
    """Lists (audiences) with their members by subscriber hash, and sent campaigns."""

    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    next_web_id: int = 100_000_001


class AudienceApi:
    """Members, tags, campaigns and email-activity reports (see the module docstring)."""

    def __init__(self, state: AudienceState, clock: Callable[[], float]) -> None:
        self.state, self.clock = state, clock

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.url.path)
            if match and request.method == method:
                try:
                    return getattr(self, name)(request, **match.groupdict())
                except Problem as problem:
                    return problem_response(
                        problem.status, problem.title, problem.detail, **problem.extra
                    )
        detail = "The requested resource could not be found."
        return problem_response(404, "Resource Not Found", detail)

    # ----------------------------------------------------------------- members

    def new_member(self, list_id: str, email: str, status: str, **fields: Any) -> dict[str, Any]:
        """Store a member created now (or at ``fields["last_changed"]``)."""
        now = stamp(self.clock())
        member: dict[str, Any] = {
            "id": subscriber_hash(email),
            "email_address": email,
            "unique_email_id": secrets.token_hex(5),
            "contact_id": secrets.token_hex(16),
            "web_id": self.state.next_web_id,
            "email_type": "html",
            "status": status,
            "merge_fields": {"FNAME": "", "LNAME": "", "PHONE": "", "COMPANY": ""},
            "timestamp_signup": now,
            "timestamp_opt": now,
            "last_changed": now,
            "vip": False,
            "source": "API - Generic",
            "tags_count": 0,
            "tags": [],
            "list_id": list_id,
        }
        self.state.next_web_id += 1
        merges = fields.pop("merge_fields", None) or {}
        member["merge_fields"] |= {k: str(v) for k, v in merges.items()}
        tags = fields.pop("tags", None) or []
        member |= fields
        self._set_tags(member, [{"name": t, "status": "active"} for t in tags])
        self._members(list_id)[member["id"]] = member
        return member

    def _members(self, list_id: str) -> dict[str, dict[str, Any]]:
        if list_id not in self.state.lists:
            detail = f"The requested resource could not be found: list {list_id}."
            raise Problem(404, "Resource Not Found", detail)
        return self.state.lists[list_id]

    def member(self, list_id: str, key: str) -> dict[str, Any]:
        """A member by subscriber hash or email (the path accepts either)."""
        members = self._members(list_id)
        found = members.get(key) or members.get(subscriber_hash(key) if "@" in key else "")
        if found is None:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        return found

    def ping(self, request: httpx.Request) -> httpx.Response:
        return json_response(200, {"health_status": "Everything's Chimpy!"})

    def get_list(self, request: httpx.Request, audience: str) -> httpx.Response:
        members = self._members(audience)
        stats = {"member_count": sum(1 for m in members.values() if m["status"] == "subscribed")}
        return json_response(200, {"id": audience, "name": f"Audience {audience}", "stats": stats})

    def list_members(self, request: httpx.Request, audience: str) -> httpx.Response:
        params = request.url.params
        members = [*self._members(audience).values()]
        if since := params.get("since_last_changed"):
            limit = _epoch(since, "since_last_changed")
            members = [m for m in members if _epoch(m["last_changed"], "") >= limit]
        if before := params.get("before_last_changed"):
            limit = _epoch(before, "before_last_changed")
            members = [m for m in members if _epoch(m["last_changed"], "") < limit]
        if status := params.get("status"):
            members = [m for m in members if m["status"] == status]
        sort_field = params.get("sort_field")
        if sort_field in ("last_changed", "timestamp_opt", "timestamp_signup"):
            members.sort(key=lambda m: m[sort_field], reverse=params.get("sort_dir") == "DESC")
        offset, count = _paging(params)
        body = {
            "members": [dict(m) for m in members[offset : offset + count]],
            "list_id": audience,
            "total_items": len(members),
            "_links": [{"rel": "self", "href": str(request.url), "method": "GET"}],
        }
        return json_response(200, body)

    def get_member(self, request: httpx.Request, audience: str, member: str) -> httpx.Response:
        return json_response(200, dict(self.member(audience, member)))

    def put_member(self, request: httpx.Request, audience: str, member: str) -> httpx.Response:
        body = _json(request)
        email = str(body.get("email_address") or "")
        _check_email(email)
        members = self._members(audience)
        existing = members.get(member) or members.get(subscriber_hash(email))
        if existing is None and member not in (subscriber_hash(email), email.lower()):
            detail = "The subscriber hash in the URL does not match the email address."
            raise Problem(400, "Invalid Resource", detail)
        if existing is not None and existing["email_address"].lower() != email.lower():
            if subscriber_hash(email) in members:
                raise Problem(400, "Member Exists", f"{email} is already a list member.")
            del members[existing["id"]]  # a new address: the member gets a new id
            existing |= {"email_address": email, "id": subscriber_hash(email)}
            members[existing["id"]] = existing
            existing["last_changed"] = stamp(self.clock())
        if existing is None:
            status = body.get("status") or body.get("status_if_new")
            if status not in STATUSES:
                raise Problem(400, "Invalid Resource", "The status value is required.")
            fields = {
                "merge_fields": body.get("merge_fields") or {},
                "tags": body.get("tags") or [],
            }
            return json_response(200, dict(self.new_member(audience, email, status, **fields)))
        self._update(existing, body)
        return json_response(200, dict(existing))

    def _update(self, member: dict[str, Any], body: dict[str, Any]) -> None:
        """Merge fields and (when given) status change; ``status_if_new`` and ``tags`` are
        ignored for an existing member, as Mailchimp does."""
        before = json.dumps(member, sort_keys=True)
        status = body.get("status")
        if status is not None:
            if status not in STATUSES:
                raise Problem(400, "Invalid Resource", f"Invalid status {status!r}.")
            if member["status"] == "cleaned" and status != "cleaned":
                detail = f"{member['email_address']} was permanently deleted (cleaned)."
                raise Problem(400, "Member In Compliance State", detail)
            member["status"] = status
        merges = body.get("merge_fields") or {}
        member["merge_fields"] = member["merge_fields"] | {k: str(v) for k, v in merges.items()}
        if json.dumps(member, sort_keys=True) != before:
            member["last_changed"] = stamp(self.clock())

    def tags(self, request: httpx.Request, audience: str, member: str) -> httpx.Response:
        found = self.member(audience, member)
        items = _json(request).get("tags")
        if not isinstance(items, list):
            raise Problem(400, "Invalid Resource", "tags: an array is required.")
        self._set_tags(found, items)
        found["last_changed"] = stamp(self.clock())
        return httpx.Response(204, headers={"X-Request-Id": str(uuid.uuid4())})

    def _set_tags(self, member: dict[str, Any], items: list[Any]) -> None:
        tags = {t["name"]: t for t in member["tags"]}
        for item in items:
            name = str(item.get("name") if isinstance(item, dict) else item)
            active = not isinstance(item, dict) or item.get("status", "active") == "active"
            if active and name not in tags:
                tags[name] = {"id": zlib.crc32(name.encode()) % 100_000, "name": name}
            elif not active:
                tags.pop(name, None)
        member["tags"] = list(tags.values())
        member["tags_count"] = len(tags)

    # --------------------------------------------------------------- campaigns

    def list_campaigns(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        found = sorted(self.state.campaigns.values(), key=lambda c: c.send_time)
        if list_id := params.get("list_id"):
            found = [c for c in found if c.list_id == list_id]
        if params.get("status") not in (None, "sent"):
            found = []
        if since := params.get("since_send_time"):
            found = [c for c in found if c.send_time >= _epoch(since, "since_send_time")]
        if params.get("sort_dir") == "DESC":
            found.reverse()
        offset, count = _paging(params)
        items = [_campaign_json(c) for c in found[offset : offset + count]]
        return json_response(200, {"campaigns": items, "total_items": len(found)})

    def email_activity(self, request: httpx.Request, campaign: str) -> httpx.Response:
        found = self.state.campaigns.get(campaign)
        if found is None:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        since = request.url.params.get("since")
        limit = _epoch(since, "since") if since else None
        emails = [
            {
                "campaign_id": found.id,
                "list_id": found.list_id,
                "list_is_active": True,
                "email_id": email_id,
                "email_address": entry["email_address"],
                "activity": [
                    dict(a)
                    for a in entry["activity"]
                    if limit is None or _epoch(a["timestamp"], "") > limit
                ],
            }
            for email_id, entry in found.recipients.items()
        ]
        offset, count = _paging(request.url.params)
        body = {
            "emails": emails[offset : offset + count],
            "campaign_id": found.id,
            "total_items": len(emails),
        }
        return json_response(200, body)


def _campaign_json(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "type": "regular",
        "status": "sent",
        "send_time": stamp(campaign.send_time),
        "emails_sent": len(campaign.recipients),
        "recipients": {"list_id": campaign.list_id},
        "settings": {"subject_line": campaign.subject, "title": campaign.subject},
    }


def _paging(params: httpx.QueryParams) -> tuple[int, int]:
    try:
        offset, count = int(params.get("offset", 0)), int(params.get("count", 10))
    except ValueError:
        raise Problem(400, "Invalid Resource", "offset and count must be integers.") from None
    if count > MAX_COUNT or count < 1 or offset < 0:
        detail = f"count must be between 1 and {MAX_COUNT}; offset must not be negative."
        raise Problem(400, "Invalid Resource", detail)
    return offset, count


def _json(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        raise Problem(
            400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
        ) from None
    if not isinstance(body, dict):
        raise Problem(400, "Invalid Resource", "The request body must be a JSON object.")
    return body


def _check_email(email: str) -> None:
    if not _EMAIL.match(email):
        detail = (
            "The resource submitted could not be validated. For field-specific details, "
            "see the 'errors' array."
        )
        errors = [
            {
                "field": "email_address",
                "message": f"{email} looks fake or invalid, please enter a real email address.",
            }
        ]
        raise Problem(400, "Invalid Resource", detail, errors=errors)
