"""How Graph collections are walked: the first page from the stream's path, then the whole
``@odata.nextLink`` until it is absent (vendor doc B3), fetched through
:meth:`VendorClient.follow`, so a link to a host that is not Graph's is refused.

An incremental run (a watermark in ``state``) filters on the stream's cursor field
``ge`` the watermark, ordered by it: the boundary records come again and are skipped by
the content hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from connectors.base import JSONDict, Page, Stream
from core.errors import ConfigError

if TYPE_CHECKING:
    from connectors.http import VendorClient

#: Times in UTC and bodies as text, so that what we read compares with what we wrote.
PREFER = {"Prefer": 'outlook.timezone="UTC", outlook.body-content-type="text"'}


@dataclass(frozen=True)
class NextLinkPaginator:
    """First page with ``$top`` (and the watermark filter), then ``@odata.nextLink``."""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        link = (cursor or {}).get("next")
        if link:
            response = client.follow(link, headers=PREFER)
            key = "next:" + hashlib.sha256(link.encode()).hexdigest()[:40]
        else:
            params: dict[str, str | int] = {"$top": stream.page_size}
            since = state.get("cursor")
            if since and stream.cursor_field:
                params["$filter"] = f"{stream.cursor_field} ge {since}"
                params["$orderby"] = stream.cursor_field
            response = client.request("GET", stream.path, params=params, headers=PREFER)
            key = f"first:{since or ''}"
        body = _collection(response, stream)
        following = body.get("@odata.nextLink")
        return Page(list(body.get("value") or []), {"next": following} if following else None, key)


def _collection(response: httpx.Response, stream: Stream) -> JSONDict:
    if response.status_code == 404:
        raise ConfigError(
            f"Graph has no {stream.path} (is the organizer setting a user of the tenant?)"
        )
    return dict(response.json())


def fetch_events_by_ids(client: VendorClient, stream: Stream, ids: Sequence[str]) -> list[JSONDict]:
    """Calendar events by id (replay, read-back); events that are gone are left out."""
    found = []
    for event_id in ids:
        response = client.request("GET", f"{stream.path}/{event_id}", headers=PREFER)
        if response.status_code != 404:
            found.append(dict(response.json()))
    return found
