"""How Mailchimp's collections are walked: ``offset``/``count`` until ``total_items`` (the
SDK's :class:`~connectors.paging.OffsetPaginator`).

* Members: ``GET /lists/{list_id}/members`` sorted by ``last_changed`` ascending; an
  incremental run asks only for members changed since the watermark
  (``since_last_changed``; members at the boundary come again and are skipped by the
  content hash).
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
    """Offset paging over an audience's members, oldest change first (module docstring).

    ``relink`` (bound by ``Mailchimp.stream``) sees each page before it is upserted, to
    follow members whose address, and so whose id, changed.
    """

    relink: Callable[[list[JSONDict]], None] | None = None

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        page = MEMBERS.fetch(client, stream, cursor, state)
        if self.relink is not None and page.records:
            self.relink(page.records)
        return page


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
