"""A stateful Microsoft Graph simulator for the Teams connector, served over real HTTP.

It issues client-credentials tokens that expire (``/{tenant}/oauth2/v2.0/token``), checks
bearer tokens, keeps users, calendar events (``isOnlineMeeting`` gives a Teams join URL),
online meetings with attendance reports and records, and change-notification
subscriptions that expire; it pages every collection with absolute ``@odata.nextLink``
URLs (``$top``/``$skiptoken``; ``next_link_base`` makes them point at another host),
filters events on ``lastModifiedDateTime ge`` and meetings on ``JoinWebUrl eq``, answers
injected faults as Graph errors, and builds change and lifecycle notifications carrying
each subscription's clientState.  Vendor facts: docs/vendors/teams.md.

Use it in-process (``httpx.MockTransport(sim)``) or over a socket (``with sim:``, see
:mod:`simulators.base`), Graph and login on the same server.  Run it standalone:
``python -m simulators.teams --port 8768``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from simulators.base import Simulator
from simulators.teams.store import GraphStore, Meeting, graph_time, parse_graph_time

__all__ = ["GraphSimulator"]

DEFAULT_TOP = 10
MAX_TOP = 1000
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_FILTER_SINCE = re.compile(r"lastModifiedDateTime ge (\S+)", re.IGNORECASE)
_FILTER_JOIN = re.compile(r"JoinWebUrl eq '(.+)'", re.IGNORECASE)


def error(status: int, code: str, message: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "sim"}}}
    return httpx.Response(status, json=body)


class GraphSimulator(Simulator):
    """Microsoft Graph (v1.0) for one tenant, plus its login endpoint (which injected
    faults spare unless given a ``path_prefix``)."""

    name = "Teams"

    def __init__(
        self,
        *,
        tenant_id: str = "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        token_ttl: int = 3599,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.token_ttl = token_ttl
        self.store = GraphStore(tenant_id)
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch s)
        self.tokens_issued = 0
        self.next_link_base: str | None = None
        self._unbroken: dict[str, Any] = {}

    # --- test controls -------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every issued token stops working (as if its hour had passed)."""
        with self._lock:
            self.tokens.clear()

    def add_user(self, upn: str, display_name: str = "") -> str:
        with self._lock:
            return self.store.add_user(upn, display_name)

    def add_events(self, owner: str, count: int, *, online: bool = False) -> list[str]:
        """``count`` calendar events in ``owner``'s calendar; their ids."""
        with self._lock:
            owner_id = self._user_id(owner)
            now = self.clock()
            return [
                self.store.create_event(owner_id, _event_body(i, online), now)["id"]
                for i in range(count)
            ]

    def update_event(self, event_id: str, **changes: Any) -> None:
        with self._lock:
            self.store.update_event(event_id, changes, self.clock())

    def break_event(self, event_id: str, *, broken: bool = True) -> None:
        """Give the event a start time no one can read (or a good one again)."""
        with self._lock:
            event = self.store.events[event_id]
            if broken:
                self._unbroken[event_id] = event["start"]
                start = {"dateTime": "not a time", "timeZone": "UTC"}
            else:
                start = self._unbroken.pop(event_id, event["start"])
            self.store.update_event(event_id, {"start": start}, self.clock())

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.store.events.get(event_id)

    def meeting_for_event(self, event_id: str) -> Meeting | None:
        with self._lock:
            event = self.store.events.get(event_id)
            url = ((event or {}).get("onlineMeeting") or {}).get("joinUrl")
            return self.store.meeting_by_join_url(event["_owner"], url) if event and url else None

    def end_session(self, meeting_id: str, attendance: list[dict[str, Any]]) -> str:
        """Close a session of ``meeting_id``; ``attendance`` are attendanceRecord objects."""
        with self._lock:
            record = self.store.meetings[meeting_id].record
            return self.store.end_session(
                meeting_id, attendance, record["startDateTime"], record["endDateTime"]
            )

    def notification(self, sub_id: str, change_type: str, event_id: str) -> bytes:
        """The body Graph POSTs to the subscription's notificationUrl for one change."""
        with self._lock:
            subscription = self.store.subscriptions[sub_id]
            owner = subscription.record["resource"].split("/")[2]
            resource = f"Users/{owner}/Events/{event_id}"
            item = {
                **self._envelope(sub_id),
                "changeType": change_type,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "id": event_id,
                },
            }
            return json.dumps({"value": [item]}).encode()

    def lifecycle(self, sub_id: str, event: str) -> bytes:
        """A lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed);
        ``subscriptionRemoved`` also deletes the subscription here."""
        with self._lock:
            body = {"value": [{**self._envelope(sub_id), "lifecycleEvent": event}]}
            if event == "subscriptionRemoved":
                del self.store.subscriptions[sub_id]
            return json.dumps(body).encode()

    def _envelope(self, sub_id: str) -> dict[str, Any]:
        subscription = self.store.subscriptions[sub_id]
        return {
            "subscriptionId": sub_id,
            "subscriptionExpirationDateTime": self.store.subscription_json(subscription)[
                "expirationDateTime"
            ],
            "clientState": subscription.client_state,
            "tenantId": self.tenant_id,
        }

    # --- HTTP ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._respond(request)

    def is_api_call(self, request: httpx.Request) -> bool:
        return _TOKEN.match(request.url.path.removeprefix("/v1.0")) is None

    def fault_response(self, status: int) -> httpx.Response:
        if status == 429:
            return error(429, "TooManyRequests", "Too many requests.")
        return error(status, "serviceNotAvailable", "Injected failure")

    def _respond(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.0")
        token_route = _TOKEN.match(path)
        if token_route and request.method == "POST":
            return self._token(token_route.group(1), request)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        try:
            return self._route(request, path)
        except KeyError:
            return error(404, "itemNotFound", "The specified object was not found in the store.")
        except (ValueError, TypeError) as exc:
            return error(400, "invalidRequest", str(exc))

    def _token(self, tenant: str, request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        if tenant != self.tenant_id:
            return httpx.Response(400, json={"error": "invalid_request"})
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith(
            "/.default"
        ):
            return httpx.Response(400, json={"error": "invalid_scope"})
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            refusal = {"error": "invalid_client", "error_description": "AADSTS7000215"}
            return httpx.Response(401, json=refusal)
        token = f"eyJ0eXAi.{secrets.token_urlsafe(24)}"
        self.tokens[token] = self.clock() + self.token_ttl
        self.tokens_issued += 1
        body = {"token_type": "Bearer", "expires_in": self.token_ttl, "access_token": token}
        return httpx.Response(200, json={**body, "ext_expires_in": self.token_ttl})

    def _authenticate(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self.clock():
            return error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        return None

    def _route(self, request: httpx.Request, path: str) -> httpx.Response:
        method, parts = request.method, [p for p in path.split("/") if p]
        body = json.loads(request.content) if request.content else {}
        if parts[:1] == ["subscriptions"]:
            return self._subscriptions(method, parts[1:], body)
        if len(parts) == 2 and parts[0] == "users" and method == "GET":
            user = self.store.user(urllib.parse.unquote(parts[1]))
            if user is None:
                raise KeyError(path)
            return httpx.Response(200, json=user)
        if len(parts) < 3 or parts[0] != "users":
            raise KeyError(path)
        owner_id = self._user_id(parts[1])
        if parts[2] == "events":
            return self._events(request, owner_id, method, parts[3:], body)
        if parts[2] == "onlineMeetings":
            return self._meetings(request, owner_id, method, parts[3:], body)
        raise KeyError(path)

    def _user_id(self, key: str) -> str:
        user = self.store.user(urllib.parse.unquote(key))
        if user is None:
            raise KeyError(key)
        return str(user["id"])

    def _events(
        self, request: httpx.Request, owner: str, method: str, rest: list[str], body: Any
    ) -> httpx.Response:
        now = self.clock()
        if not rest and method == "GET":
            events = self.store.events_of(owner)
            match = _FILTER_SINCE.search(request.url.params.get("$filter", ""))
            if match:
                since = parse_graph_time(match.group(1).strip("'"))
                events = [e for e in events if parse_graph_time(e["lastModifiedDateTime"]) >= since]
            events.sort(key=lambda e: (e["lastModifiedDateTime"], e["id"]))
            return self._page(request, [_public(e) for e in events])
        if not rest and method == "POST":
            if not str(body.get("subject") or "").strip():
                raise ValueError("The event needs a subject.")  # this simulator's rule
            return httpx.Response(201, json=_public(self.store.create_event(owner, body, now)))
        event = self.store.events[urllib.parse.unquote(rest[0])]
        if event["_owner"] != owner:
            raise KeyError(rest[0])
        if method == "GET":
            return httpx.Response(200, json=_public(event))
        if method == "PATCH":
            return httpx.Response(
                200, json=_public(self.store.update_event(event["id"], body, now))
            )
        if method == "DELETE":
            self.store.delete_event(event["id"])
            return httpx.Response(204)
        raise ValueError(f"{method} is not supported here")

    def _meetings(
        self, request: httpx.Request, owner: str, method: str, rest: list[str], body: Any
    ) -> httpx.Response:
        if not rest and method == "GET":
            match = _FILTER_JOIN.search(request.url.params.get("$filter", ""))
            if not match:
                raise ValueError("list onlineMeetings needs $filter=JoinWebUrl eq '...'")
            meeting = self.store.meeting_by_join_url(owner, match.group(1))
            return httpx.Response(200, json={"value": [meeting.record] if meeting else []})
        if not rest and method == "POST":
            meeting = self.store.create_meeting(owner, body, self.clock())
            return httpx.Response(201, json=meeting.record)
        meeting = self.store.meetings[rest[0]]
        if meeting.organizer_id != owner:
            raise KeyError(rest[0])
        if rest[1:] == [] and method == "GET":
            return httpx.Response(200, json=meeting.record)
        if rest[1:] == [] and method == "DELETE":
            del self.store.meetings[meeting.id]
            return httpx.Response(204)
        if rest[1:] == ["attendanceReports"]:
            return self._page(request, meeting.reports)
        if len(rest) == 4 and rest[1] == "attendanceReports" and rest[3] == "attendanceRecords":
            return self._page(request, meeting.records[rest[2]])
        raise KeyError("/".join(rest))

    def _subscriptions(self, method: str, rest: list[str], body: Any) -> httpx.Response:
        now = self.clock()
        if not rest and method == "POST":
            for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
                if not body.get(name):
                    raise ValueError(f"{name} is required")
            created = self.store.create_subscription(body, now)
            return httpx.Response(201, json=self.store.subscription_json(created))
        subscription = self.store.live_subscription(rest[0], now) if rest else None
        if subscription is None:
            raise KeyError("subscription")
        if rest[1:] == ["reauthorize"] and method == "POST":
            return httpx.Response(204)
        if method == "PATCH":
            renewed = self.store.renew_subscription(
                subscription.id, body.get("expirationDateTime"), now
            )
            return httpx.Response(200, json=self.store.subscription_json(renewed))
        if method == "DELETE":
            del self.store.subscriptions[subscription.id]
            return httpx.Response(204)
        return httpx.Response(200, json=self.store.subscription_json(subscription))

    def _page(self, request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        top = min(int(params.get("$top", DEFAULT_TOP)), MAX_TOP)
        start = int(params.get("$skiptoken", "0") or 0)
        body: dict[str, Any] = {"value": items[start : start + top]}
        if start + top < len(items):
            query = {**dict(params), "$top": str(top), "$skiptoken": str(start + top)}
            base = self.next_link_base or f"{request.url.scheme}://{request.url.netloc.decode()}"
            body["@odata.nextLink"] = (
                f"{base}{request.url.path}?{urllib.parse.urlencode(query, safe='$')}"
            )
        return httpx.Response(200, json=body)


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _event_body(number: int, online: bool) -> dict[str, Any]:
    day = 1 + number % 28
    return {
        "subject": f"Meeting {number}",
        "body": {"contentType": "text", "content": f"Agenda {number}"},
        "start": {"dateTime": f"2026-02-{day:02d}T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-02-{day:02d}T10:00:00.0000000", "timeZone": "UTC"},
        "location": {"displayName": f"Room {number % 7}"},
        "isOnlineMeeting": online,
    }


def graph_now(sim: GraphSimulator) -> str:
    """The simulator's clock as a Graph timestamp."""
    return graph_time(sim.clock())
