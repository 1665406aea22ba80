"""How HubSpot's CRM collections are walked.

* Full refresh (no watermark): the list endpoint, ``after`` cursors (the SDK's
  :class:`~connectors.paging.CursorPaginator`), 100 per page.
* Incremental (streams with a ``cursor_field``): the search endpoint filtered on the cursor property (``lastmodifieddate``
  or ``hs_lastmodifieddate``) ``GTE`` the watermark, sorted ascending, 200 per page.
  Search stops at 10,000 results per query, so before ``after`` reaches the cap the
  paginator starts a new query from the last value it saw (``GTE``: the boundary records
  come again and are skipped by the content hash).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.base import JSONDict, Page, Stream
from connectors.hubspot.mapping import cursor_text, parse_time
from connectors.paging import CursorPaginator
from core.errors import FatalError

if TYPE_CHECKING:
    from connectors.http import VendorClient

SEARCH_CAP = 10_000
SEARCH_PAGE = 200
LIST_PAGE = 100
#: The list endpoint: ``after`` cursors in ``paging.next.after``; a 404 is an empty list.
LIST = CursorPaginator(records="results", max_limit=LIST_PAGE, missing=None)


@dataclass(frozen=True)
class CrmPaginator:
    """List for full refreshes, search windows for incremental syncs (see module docstring)."""

    properties: tuple[str, ...]
    associations: str | None = None
    #: Extra query parameters of the list endpoint (e.g. archived=true).
    params: tuple[tuple[str, str], ...] = ()

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        since = (cursor or {}).get("since", state.get("cursor"))
        if since is None or stream.cursor_field is None or (cursor or {}).get("mode") == "list":
            return self._list(client, stream, (cursor or {}).get("after"))
        return self._search(client, stream, since, int((cursor or {}).get("after", 0)))

    def _list(self, client: VendorClient, stream: Stream, after: str | None) -> Page:
        params: dict[str, str] = {"properties": ",".join(self.properties), **dict(self.params)}
        if self.associations:
            params["associations"] = self.associations
        records, following = LIST.page(
            client, stream.path, after, page_size=stream.page_size, params=params
        )
        next_cursor = {"mode": "list", "after": following} if following else None
        return Page(records, next_cursor, key=f"list:{after or ''}")

    def _search(self, client: VendorClient, stream: Stream, since: str, after: int) -> Page:
        assert stream.cursor_field
        moment = parse_time(since)
        payload = {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": stream.cursor_field,
                            "operator": "GTE",
                            "value": str(int(moment.timestamp() * 1000)) if moment else "0",
                        }
                    ]
                }
            ],
            "sorts": [{"propertyName": stream.cursor_field, "direction": "ASCENDING"}],
            "properties": list(self.properties),
            "limit": SEARCH_PAGE,
            "after": str(after),
        }
        body = client.request("POST", f"{stream.path}/search", json=payload).json()
        records = body.get("results") or []
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        key = f"search:{since}:{after}"
        if not following:
            return Page(records, None, key)
        if int(following) + SEARCH_PAGE <= SEARCH_CAP:
            return Page(records, {"since": since, "after": int(following)}, key)
        last = (
            cursor_text((records[-1].get("properties") or {}).get(stream.cursor_field))
            if records
            else None
        )
        if last is None or last == cursor_text(since):
            raise FatalError(
                f"more than {SEARCH_CAP} {stream.name} share {stream.cursor_field}={since}; "
                "run a full refresh (plugs sync --full)"
            )
        return Page(records, {"since": last, "after": 0}, key)


def fetch_by_ids(
    properties: tuple[str, ...],
) -> Callable[[VendorClient, Stream, Sequence[str]], list[JSONDict]]:
    """Read given records again (replay), through the batch read endpoint."""

    def fetch(client: VendorClient, stream: Stream, ids: Sequence[str]) -> list[JSONDict]:
        body = client.request(
            "POST",
            f"{stream.path}/batch/read",
            json={"inputs": [{"id": i} for i in ids], "properties": list(properties)},
        ).json()
        return list(body.get("results") or [])

    return fetch
