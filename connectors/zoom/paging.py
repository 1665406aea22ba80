"""How Zoom's collections are walked for one integration.

Zoom lists have no "changed since" filter and registrants live under each meeting, so the
streams walk *our* meetings: the ones linked to events in the external-id map.

* ``meetings``: each linked meeting read again (``GET /meetings/{id}``), so a change made
  in Zoom reaches its event; a meeting deleted in Zoom (404, code 3001) is skipped.
* ``registrants``: for each linked meeting, ``GET /meetings/{id}/registrants`` once per
  status (``status=pending``, ``approved``, ``denied``: without it Zoom lists only the
  approved ones), paged with ``page_size`` and ``next_page_token`` (the SDK's
  :class:`~connectors.paging.CursorPaginator`; a meeting deleted in Zoom has none).  Each
  registrant gets its ``meeting_id`` and the ``user_id`` of the organization's user with its
  email (None when there is none: the mapper fails that record with its reason).  Every
  run reads them all, as Zoom has no "changed since" filter; an incremental run keeps
  those created at or after the watermark (``create_time``, the only time Zoom gives
  them) and older ones stored here with another status (approved or denied in Zoom
  since: that keeps their ``create_time``).

The paginators need the integration (to read the map and match users), so the streams
declared on the class hold unbound ones and :meth:`Zoom.stream` binds them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from connectors.base import JSONDict, Page, Stream
from connectors.paging import CursorPaginator
from connectors.zoom.mapping import registrant_key
from core.errors import ConfigError
from models.events import EventAttendee
from models.organizations import User
from models.session import get_database
from models.sync_state import ExternalId

if TYPE_CHECKING:
    from connectors.http import VendorClient

MAX_PAGE = 300
#: Zoom lists registrants of one status at a time (approved only when not asked).
REGISTRANT_STATUSES = ("pending", "approved", "denied")
REGISTRANTS = CursorPaginator(
    records="registrants",
    limit_param="page_size",
    max_limit=MAX_PAGE,
    token_param="next_page_token",
    next_token="next_page_token",
    missing=None,
)


@dataclass(frozen=True)
class Bound:
    """The organization and integration a paginator reads our side of."""

    organization_id: uuid.UUID
    integration_id: uuid.UUID

    def meeting_ids(self) -> list[str]:
        with get_database().tenant(self.organization_id) as session:
            ids = session.scalars(
                select(ExternalId.external_id)
                .where(
                    ExternalId.integration_id == self.integration_id,
                    ExternalId.entity_type == "events",
                )
                .order_by(ExternalId.external_id)
            )
            return list(ids)

    def stored_statuses(self, keys: list[str]) -> dict[str, str]:
        """The Zoom status last stored for each of these registrants (by external id)."""
        if not keys:
            return {}
        with get_database().tenant(self.organization_id) as session:
            rows = session.execute(
                select(ExternalId.external_id, EventAttendee.metadata_)
                .join(EventAttendee, EventAttendee.id == ExternalId.local_id)
                .where(
                    ExternalId.integration_id == self.integration_id,
                    ExternalId.entity_type == EventAttendee.__tablename__,
                    ExternalId.external_id.in_(keys),
                )
            )
            return {key: str(((meta or {}).get("zoom") or {}).get("status")) for key, meta in rows}

    def users_by_email(self, emails: set[str]) -> dict[str, str]:
        if not emails:
            return {}
        with get_database().tenant(self.organization_id) as session:
            rows = session.execute(select(User.email, User.id).where(User.email.in_(emails)))
            return {email: str(user_id) for email, user_id in rows}


@dataclass(frozen=True)
class _BoundPaginator:
    bound: Bound | None = None

    def bind(self, organization_id: uuid.UUID, integration_id: uuid.UUID) -> Any:
        return replace(self, bound=Bound(organization_id, integration_id))

    def _ours(self) -> Bound:
        if self.bound is None:
            raise ConfigError("a Zoom stream is used without its integration (Zoom.stream)")
        return self.bound


@dataclass(frozen=True)
class MeetingsPaginator(_BoundPaginator):
    """Our linked meetings, ``page_size`` at a time (see the module docstring)."""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        ids = (cursor or {}).get("ids")
        if ids is None:
            ids = self._ours().meeting_ids()
        batch, rest = ids[: stream.page_size], ids[stream.page_size :]
        records = self.fetch_by_ids(client, stream, batch)
        return Page(records, {"ids": rest} if rest else None, key=f"meetings:{batch[:1]}")

    def fetch_by_ids(self, client: VendorClient, stream: Stream, ids: list[str]) -> list[JSONDict]:
        records = []
        for meeting_id in ids:
            response = client.request("GET", f"/meetings/{meeting_id}")
            if response.status_code != 404:  # deleted in Zoom: nothing to read
                records.append(response.json())
        return records


@dataclass(frozen=True)
class RegistrantsPaginator(_BoundPaginator):
    """Every linked meeting's registrants (see the module docstring)."""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        cursor = dict(cursor or {"meetings": self._ours().meeting_ids(), "i": 0})
        meetings, index = cursor["meetings"], int(cursor["i"])
        if index >= len(meetings):
            return Page([], None, key="registrants:none")
        status = int(cursor.get("s") or 0)
        meeting_id, token = meetings[index], cursor.get("token") or ""
        found, following = REGISTRANTS.page(
            client,
            f"/meetings/{meeting_id}/registrants",
            token,
            page_size=stream.page_size,
            params={"status": REGISTRANT_STATUSES[status]},
        )
        records = [{**r, "meeting_id": meeting_id} for r in found]
        since = state.get("cursor")
        if since:
            records = self._changed(records, since)
        if following:
            next_cursor: JSONDict | None = {**cursor, "token": following}
        elif status + 1 < len(REGISTRANT_STATUSES):
            next_cursor = {"meetings": meetings, "i": index, "s": status + 1}
        elif index + 1 < len(meetings):
            next_cursor = {"meetings": meetings, "i": index + 1}
        else:
            next_cursor = None
        key = f"registrants:{meeting_id}:{REGISTRANT_STATUSES[status]}:{token}"
        return Page(self._matched(records), next_cursor, key=key)

    def fetch_by_ids(self, client: VendorClient, stream: Stream, ids: list[str]) -> list[JSONDict]:
        records = []
        for key in ids:
            meeting_id, _, registrant_id = key.partition(":")
            path = f"/meetings/{meeting_id}/registrants/{registrant_id}"
            response = client.request("GET", path)
            if response.status_code != 404:
                records.append({**response.json(), "meeting_id": meeting_id})
        return self._matched(records)

    def _changed(self, records: list[JSONDict], since: str) -> list[JSONDict]:
        """Those created since ``since``, and older ones stored here with another status
        (older ones not stored were read, and failed, before: a replay retries them)."""
        keyed = [(registrant_key(r["meeting_id"], r.get("id")), r) for r in records]
        older = {key for key, r in keyed if str(r.get("create_time") or "") < since}
        stored = self._ours().stored_statuses(sorted(older))
        return [
            r
            for key, r in keyed
            if key not in older or (key in stored and stored[key] != r.get("status"))
        ]

    def _matched(self, records: list[JSONDict]) -> list[JSONDict]:
        emails = {str(r.get("email") or "").strip().lower() for r in records}
        users = self._ours().users_by_email(emails - {""})
        return [
            {**r, "user_id": users.get(str(r.get("email") or "").strip().lower())} for r in records
        ]


def bind_stream(stream: Stream, organization_id: uuid.UUID, integration_id: uuid.UUID) -> Stream:
    """``stream`` with its paginator (and fetch_by_ids) bound to the integration."""
    paginator = stream.paginator
    if not isinstance(paginator, _BoundPaginator):
        return stream
    bound = paginator.bind(organization_id, integration_id)
    return replace(stream, paginator=bound, fetch_by_ids=bound.fetch_by_ids)


__all__ = ["MeetingsPaginator", "RegistrantsPaginator", "bind_stream", "registrant_key"]
