"""How Mailchimp's collections are walked: ``offset``/``count`` until ``total_items`` (the
SDK's :class:`~connectors.paging.OffsetPaginator`).

* Members: ``GET /lists/{list_id}/members`` sorted by ``last_changed`` ascending, paged by
  that key rather than by a plain offset.  Mailchimp offers no order an edit cannot change
  (``timestamp_opt``, ``timestamp_signup`` and ``last_changed`` all move), and with offset
  paging an edit or a delete behind the current page shifts every later member one place
  back, so one falls between two pages.  Instead each page asks ``since_last_changed`` = the
  last ``last_changed`` read (Mailchimp's filter includes that second), at the offset of
  the members of that second already read, less one: the first member answered must be
  the last one read.  When it is not, members of that second moved (edited, deleted) and the
  second is read again from its start (an edit only ever moves a member later, so that
  second can only shrink and the re-read ends).  An edited member is read again at its new
  place; nothing is stepped over, so the watermark (the largest ``last_changed`` stored)
  never passes a member that was not stored.  An incremental run starts from the
  watermark; members at the boundary come again and the content hash skips them.
* Campaign activity: the audience's sent campaigns (``GET /campaigns``), then for each,
  ``GET /reports/{campaign_id}/email-activity`` (``since`` the watermark), flattened to one
  record per recipient and action.  Every recipient listed was sent the campaign, which
  becomes a ``sent`` record at the campaign's send time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from connectors.base import JSONDict, Page, Stream
from connectors.mailchimp.mapping import cursor_text, parse_time
from connectors.paging import OffsetPaginator

if TYPE_CHECKING:
    from connectors.http import VendorClient

#: Mailchimp's largest ``count``.
MAX_COUNT = 1000
#: Campaigns sent this long before the watermark are still read for new opens and clicks.
ACTIVITY_LOOKBACK = timedelta(days=90)
_MISSING = "Mailchimp has no {path} (check the list_id setting)"


def _offset_pages(records: str, **options: Any) -> OffsetPaginator:
    """Mailchimp's paging of the collection whose records are in ``records``."""
    return OffsetPaginator(
        records=records,
        limit_param="count",
        max_limit=MAX_COUNT,
        total="total_items",
        missing=_MISSING,
        **options,
    )


#: Members, oldest change first (the order is what an interrupted run resumes by).
MEMBERS = _offset_pages(
    "members",
    since_param="since_last_changed",
    params=(
        ("sort_field", "last_changed"),
        ("sort_dir", "ASC"),
        ("exclude_fields", "_links,members._links"),
    ),
    name="members",
)
CAMPAIGNS = _offset_pages("campaigns")
EMAIL_ACTIVITY = _offset_pages("emails")


@dataclass(frozen=True)
class MembersPaginator:
    """An audience's members, oldest change first, paged by ``last_changed`` (module
    docstring).  The cursor: ``after`` (the last ``last_changed`` read), ``ties`` (members
    of that second read so far), ``last`` (the id of the last one) and ``rereads`` (how
    often a second was read again, so that every page of a run has a key of its own).

    ``relink`` (bound by ``Mailchimp.stream``) sees each page before it is upserted, to
    follow members whose address, and so whose id, changed.
    """

    relink: Callable[[list[JSONDict]], None] | None = None

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        cursor = cursor or {}
        after, ties = cursor.get("after"), int(cursor.get("ties") or 0)
        rereads = int(cursor.get("rereads") or 0)
        key = f"members:{after or state.get('cursor') or ''}:{rereads}:{ties}"
        if after is None or ties < 1:  # the first page (an older cursor starts over too)
            records, following = self._page(client, stream, state.get("cursor"), 0)
        else:
            records, following = self._page(client, stream, after, ties - 1, overlap=True)
            if records and records[0].get("id") == cursor.get("last"):
                records = records[1:]  # the last member read: nothing moved before it
            else:  # members of that second moved: read it again from its start
                rereads += 1
                ties = 0
                records, following = self._page(client, stream, after, 0)
        if self.relink is not None and records:
            self.relink(records)
        next_cursor = None
        if following and records:
            last = cursor_text(records[-1].get("last_changed"))
            same = sum(1 for r in records if cursor_text(r.get("last_changed")) == last)
            next_cursor = {
                "after": last,
                "ties": same + (ties if last == after else 0),
                "last": records[-1].get("id"),
                "rereads": rereads,
            }
        return Page(records, next_cursor, key=key)

    @staticmethod
    def _page(
        client: VendorClient, stream: Stream, since: str | None, offset: int, overlap: bool = False
    ) -> tuple[list[JSONDict], bool]:
        """The members changed since ``since`` from ``offset`` (one more with ``overlap``)
        and whether more follow."""
        size = stream.page_size + 1 if overlap else stream.page_size
        params = {"since_last_changed": since} if since else None
        records, following = MEMBERS.page(
            client, stream.path, offset, page_size=size, params=params
        )
        return records, following is not None


def fetch_members(client: VendorClient, stream: Stream, ids: Sequence[str]) -> list[JSONDict]:
    """Read given members again (replay, write-back read-back); gone ones are left out."""
    found = []
    for member_id in ids:
        response = client.request("GET", f"{stream.path}/{member_id}")
        if response.status_code != 404:
            found.append(response.json())
    return found


@dataclass(frozen=True)
class ActivityPaginator:
    """Sent campaigns of the audience, then each one's email activity (module docstring).

    ``list_id`` is bound from the integration's settings (see ``Mailchimp.stream``).
    """

    list_id: str = ""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        if cursor is None:
            cursor = {"since": state.get("cursor"), "campaigns": self._campaigns(client, state)}
            cursor |= {"index": 0, "offset": 0}
        campaigns = cursor["campaigns"]
        index, offset = int(cursor["index"]), int(cursor["offset"])
        if index >= len(campaigns):
            return Page([], None, key="activity:none")
        campaign_id, subject, sent_at = campaigns[index]
        emails, next_offset = EMAIL_ACTIVITY.page(
            client,
            f"/reports/{campaign_id}/email-activity",
            offset,
            page_size=stream.page_size,
            params={"since": cursor["since"]} if cursor["since"] else None,
        )
        records = [
            record
            for email in emails
            for record in _flatten(email, campaign_id, subject, sent_at, cursor["since"])
        ]
        if next_offset is not None:
            following = cursor | {"offset": next_offset}
        elif index + 1 < len(campaigns):
            following = cursor | {"index": index + 1, "offset": 0}
        else:
            following = None
        return Page(records, following, key=f"activity:{campaign_id}:{offset}")

    def _campaigns(self, client: VendorClient, state: JSONDict) -> list[list[str | None]]:
        """``[id, subject, send_time]`` of the audience's sent campaigns, oldest first."""
        params: dict[str, Any] = {
            "list_id": self.list_id,
            "status": "sent",
            "sort_field": "send_time",
            "sort_dir": "ASC",
        }
        since = parse_time(state.get("cursor"))
        if since is not None:
            params["since_send_time"] = cursor_text(since - ACTIVITY_LOOKBACK)
        return [
            [
                str(campaign["id"]),
                (campaign.get("settings") or {}).get("subject_line"),
                campaign.get("send_time"),
            ]
            for campaign in CAMPAIGNS.each(client, "/campaigns", page_size=MAX_COUNT, params=params)
        ]


def _url_key(url: Any) -> str:
    """Tells apart two clicks of one recipient in the same second on different links."""
    return f":{hashlib.sha256(str(url).encode()).hexdigest()[:12]}" if url else ""


def _flatten(
    email: JSONDict, campaign_id: str, subject: str | None, sent_at: str | None, since: str | None
) -> list[JSONDict]:
    """One record per action of one recipient (``sent`` first) with a stable id."""
    base = {
        "campaign_id": campaign_id,
        "subject": subject,
        "email_id": email.get("email_id"),
        "email_address": email.get("email_address"),
    }
    actions: list[JSONDict] = []
    if sent_at and (since is None or (cursor_text(sent_at) or "") >= since):
        actions.append({"action": "sent", "timestamp": sent_at})
    actions += [a for a in email.get("activity") or [] if isinstance(a, dict)]
    return [
        base
        | {
            "id": f"{campaign_id}:{email.get('email_id')}:{a.get('action')}:"
            f"{cursor_text(a.get('timestamp'))}{_url_key(a.get('url'))}",
            "action": a.get("action"),
            "timestamp": a.get("timestamp"),
            "url": a.get("url"),
            "type": a.get("type"),
        }
        for a in actions
    ]
