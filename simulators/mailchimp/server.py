"""A stateful Mailchimp Marketing 3.0 simulator that behaves like Mailchimp over HTTP.

Tests and the demo talk to it instead of ``<dc>.api.mailchimp.com``, in-process
(``httpx.MockTransport(sim)``) or over a socket (``with sim:``, see :mod:`simulators.base`;
point the integration's ``base_url`` at ``<url>/3.0``).  It keeps audiences, members
(subscriber hash keyed), tags, sent campaigns and their email activity; pages with
``offset``/``count``/``total_items``; checks the API key (HTTP Basic, any username) or
OAuth bearer tokens; answers 429 when more than 10 requests are in flight at once (or on
demand); answers injected faults as Mailchimp errors; and builds webhook deliveries
exactly as Mailchimp posts them.  Vendor facts: docs/vendors/mailchimp.md.

Run it standalone (``python -m simulators.mailchimp.server`` is the older spelling)::

    python -m simulators.mailchimp --port 8766 --members 1000
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import runpy
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from simulators.base import Simulator
from simulators.mailchimp.api import (
    AudienceApi,
    AudienceState,
    Campaign,
    problem_response,
    stamp,
    subscriber_hash,
)

__all__ = ["MailchimpSimulator"]

DEFAULT_KEY = "0123456789abcdef0123456789abcdef-us21"
DEFAULT_LIST = "a6b5da1054"
MAX_CONNECTIONS = 10
TOO_MANY = "You have exceeded the limit of 10 simultaneous connections."
_MEMBER_LIST = re.compile(r"^/3\.0/lists/[^/]+/members$")
FIRST_NAMES = ("Jane", "John", "Amara", "Kenji", "Lucia", "Omar", "Priya", "Sven", "Zoe", "Tariq")
LAST_NAMES = ("Doe", "Smith", "Okafor", "Tanaka", "Rossi", "Haddad", "Iyer", "Berg", "Lee", "Khan")


class MailchimpSimulator(Simulator):
    """Mailchimp's audience members, campaigns, reports, auth, limits and webhooks.

    Call it with an ``httpx.Request`` to get an ``httpx.Response``.  ``latency`` (seconds)
    is spent per request while it counts as in flight, so concurrency is observable;
    ``clock`` (epoch seconds) drives every timestamp.  An injected 429 carries no
    Retry-After unless ``fail_next`` is given one, as Mailchimp sends none.
    """

    name = "Mailchimp"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_KEY,
        access_tokens: tuple[str, ...] = (),
        list_id: str = DEFAULT_LIST,
        max_connections: int = MAX_CONNECTIONS,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key, self.access_tokens = api_key, set(access_tokens)
        self.list_id, self.max_connections, self.latency = list_id, max_connections, latency
        super().__init__(clock=clock)
        self.state = AudienceState(lists={list_id: {}})
        self.api = AudienceApi(self.state, clock)
        self.max_in_flight = 0
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._page_hooks: list[Callable[[list[str]], None]] = []

    # ----------------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one HTTP request as Mailchimp would."""
        with self._counted() as in_flight:
            if in_flight > self.max_connections:
                return problem_response(429, "Too Many Requests", TOO_MANY)
            if self.latency:
                time.sleep(self.latency)
            with self._lock:
                response = self._respond(request)
        if self._page_hooks and response.status_code == 200:
            if _MEMBER_LIST.match(request.url.path):
                ids = [member["id"] for member in json.loads(response.content)["members"]]
                for hook in list(self._page_hooks):
                    hook(ids)
        return response

    def on_page(self, hook: Callable[[list[str]], None]) -> None:
        """Call ``hook(ids)`` with the ids of each page of members answered, before the
        answer leaves: edits made there land between two pages of a listing, as a person's
        edits in Mailchimp do while a long listing is being read."""
        self._page_hooks.append(hook)

    def is_api_call(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/3.0/")

    def fault_response(self, status: int) -> httpx.Response:
        if status == 429:
            return problem_response(429, "Too Many Requests", TOO_MANY)
        detail = "An unexpected internal error has occurred. Please try again later."
        return problem_response(status, "Internal Server Error", detail)

    @contextmanager
    def _counted(self) -> Iterator[int]:
        with self._count_lock:
            self._in_flight += 1
            now = self._in_flight
            self.max_in_flight = max(self.max_in_flight, now)
        try:
            yield now
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _respond(self, request: httpx.Request) -> httpx.Response:
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        return self.api.dispatch(request)

    def _authenticate(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if not value:
            return problem_response(
                401, "API Key Missing", "Your request did not include an API key."
            )
        if scheme.lower() == "basic":
            try:
                _, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                password = ""
            if password and password == self.api_key:
                return None
        elif scheme.lower() in ("bearer", "oauth") and value.strip() in self.access_tokens:
            return None
        detail = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
        return problem_response(401, "API Key Invalid", detail)

    # ----------------------------------------------------------------- members

    def add_members(
        self, n: int, *, status: str = "subscribed", changed_from: float | None = None
    ) -> list[str]:
        """Seed ``n`` members ``member<k>@example.com`` changed one second apart, the last
        one second ago (or from ``changed_from``); returns their subscriber hashes."""
        start = changed_from if changed_from is not None else self.clock() - n
        with self._lock:
            members = self.state.lists[self.list_id]
            hashes = []
            for i in range(n):
                number = len(members) + 1
                member = self.api.new_member(
                    self.list_id,
                    f"member{number}@example.com",
                    status,
                    merge_fields={
                        "FNAME": FIRST_NAMES[number % len(FIRST_NAMES)],
                        "LNAME": LAST_NAMES[number // 10 % len(LAST_NAMES)],
                    },
                )
                member["last_changed"] = stamp(start + i)
                hashes.append(member["id"])
            return hashes

    def add_member(self, email: str, *, status: str = "subscribed", **fields: Any) -> str:
        """Seed one member (``merge_fields``, ``tags`` as names); returns its hash."""
        with self._lock:
            return str(self.api.new_member(self.list_id, email, status, **fields)["id"])

    def member(self, key: str) -> dict[str, Any]:
        """A copy of a member, by subscriber hash or email."""
        with self._lock:
            return dict(self.api.member(self.list_id, key))

    def update_member(self, key: str, **fields: Any) -> None:
        """Change a member as a person would in Mailchimp (``status``, ``merge_fields``,
        ``email_address``: a new address gives a new subscriber hash)."""
        with self._lock:
            member = self.api.member(self.list_id, key)
            members = self.state.lists[self.list_id]
            if "merge_fields" in fields:
                member["merge_fields"] = member["merge_fields"] | fields.pop("merge_fields")
            if "email_address" in fields:
                del members[member["id"]]
                member["id"] = subscriber_hash(fields["email_address"])
                members[member["id"]] = member
            member.update(fields)
            member["last_changed"] = stamp(self.clock())

    def delete_member(self, key: str) -> None:
        """Delete a member for good (it is no longer listed)."""
        with self._lock:
            member = self.api.member(self.list_id, key)
            del self.state.lists[self.list_id][member["id"]]

    def corrupt_member(self, key: str, **fields: Any) -> None:
        """Overwrite stored fields as they are, keeping the member's id (a broken record)."""
        with self._lock:
            self.api.member(self.list_id, key).update(fields)

    # --------------------------------------------------------------- campaigns

    def send_campaign(
        self, subject: str, recipients: list[str], *, sent_at: float | None = None
    ) -> str:
        """A campaign sent to ``recipients`` (emails); returns its id."""
        with self._lock:
            campaign = Campaign(
                id=secrets.token_hex(5),
                list_id=self.list_id,
                subject=subject,
                send_time=self.clock() if sent_at is None else sent_at,
            )
            for email in recipients:
                entry = {"email_address": email.lower(), "activity": []}
                campaign.recipients[subscriber_hash(email)] = entry
            self.state.campaigns[campaign.id] = campaign
            return campaign.id

    def record_activity(
        self, campaign_id: str, email: str, action: str, *, at: float | None = None, **extra: Any
    ) -> None:
        """An ``open``, ``click`` (``url=``) or ``bounce`` (``type="hard"``) of a recipient."""
        with self._lock:
            entry = self.state.campaigns[campaign_id].recipients[subscriber_hash(email)]
            moment = self.clock() if at is None else at
            entry["activity"].append({"action": action, "timestamp": stamp(moment)} | extra)

    # ------------------------------------------------------------------ webhooks

    def webhook_delivery(self, kind: str, key: str, **extra: str) -> tuple[dict[str, str], bytes]:
        """Headers and form body Mailchimp POSTs for a ``kind`` event about member ``key``
        (for ``upemail`` the member under its new address, with ``old_email=``; for
        ``campaign`` a campaign id).  ``extra`` adds ``data[...]`` fields."""
        with self._lock:
            fired = datetime.fromtimestamp(int(self.clock()), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            pairs = [("type", kind), ("fired_at", fired)]
            pairs += [(f"data{_brackets(k)}", v) for k, v in self._event_data(kind, key, extra)]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "MailChimp.com",
        }
        return headers, urllib.parse.urlencode(pairs).encode()

    def _event_data(
        self, kind: str, key: str, extra: dict[str, str]
    ) -> list[tuple[str | tuple[str, ...], str]]:
        """The ``data`` fields in Mailchimp's order; a tuple key is a nested one."""
        if kind == "campaign":
            campaign = self.state.campaigns[key]
            data = {"id": campaign.id, "subject": campaign.subject, "status": "sent"}
            return [*(data | {"reason": "", "list_id": self.list_id} | extra).items()]
        member = self.api.member(self.list_id, key)
        email = member["email_address"]
        if kind == "upemail":
            data = {"list_id": self.list_id, "new_id": member["id"], "new_email": email}
            return [*(data | extra).items()]
        if kind == "cleaned":
            data = {"list_id": self.list_id, "campaign_id": "", "reason": "hard", "email": email}
            return [*(data | extra).items()]
        data = {
            "id": member["id"],
            "list_id": self.list_id,
            "email": email,
            "email_type": member["email_type"],
            "web_id": str(member["web_id"]),
            "ip_opt": "203.0.113.7",
            "ip_signup": "203.0.113.7",
        }
        if kind == "unsubscribe":
            data |= {"action": "unsub", "reason": "manual", "campaign_id": ""}
        data |= extra
        merges = {"EMAIL": email} | {k: v for k, v in member["merge_fields"].items() if v}
        return [*data.items(), *((("merges", k), v) for k, v in merges.items())]

    @staticmethod
    def validation_request_headers() -> dict[str, str]:
        """The headers of the GET Mailchimp sends to check a new webhook URL."""
        return {"User-Agent": "MailChimp.com WebHook Validator"}


def _brackets(key: str | tuple[str, ...]) -> str:
    """``("merges", "FNAME")`` -> ``[merges][FNAME]`` (PHP-style form keys)."""
    parts = (key,) if isinstance(key, str) else key
    return "".join(f"[{part}]" for part in parts)


if __name__ == "__main__":  # the command lives in simulators/mailchimp/__main__.py
    runpy.run_module("simulators.mailchimp", run_name="__main__")
