"""How Graph collections are walked: the first page from the stream's path, then the whole
``@odata.nextLink`` until it is absent (docs/vendors/teams.md#paging), fetched through
:meth:`VendorClient.follow`, so a link to a host that is not Graph's is refused (the SDK's
:class:`~connectors.paging.NextLinkPaginator`).

An incremental run (a watermark in ``state``) filters on the stream's cursor field
``ge`` the watermark, ordered by it: the boundary records come again and are skipped by
the content hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import JSONDict, Stream
from connectors.paging import NextLinkPaginator

if TYPE_CHECKING:
    from connectors.http import VendorClient

#: Times in UTC and bodies as text, so that what we read compares with what we wrote.
PREFER = {"Prefer": 'outlook.timezone="UTC", outlook.body-content-type="text"'}


@dataclass(frozen=True)
class GraphPaginator(NextLinkPaginator):
    """First page with ``$top`` (and the watermark as an OData filter), then
    ``@odata.nextLink``."""

    records: str = "value"
    next_link: str | tuple[str, ...] = "@odata.nextLink"
    limit_param: str | None = "$top"
    headers: tuple[tuple[str, str], ...] = tuple(PREFER.items())
    missing: str | None = "Graph has no {path} (is the organizer setting a user of the tenant?)"

    def since_params(self, stream: Stream, since: str | None) -> dict[str, Any]:
        if not (since and stream.cursor_field):
            return {}
        return {"$filter": f"{stream.cursor_field} ge {since}", "$orderby": stream.cursor_field}


def fetch_events_by_ids(client: VendorClient, stream: Stream, ids: Sequence[str]) -> list[JSONDict]:
    """Calendar events by id (replay, read-back); events that are gone are left out."""
    found = []
    for event_id in ids:
        response = client.request("GET", f"{stream.path}/{event_id}", headers=PREFER)
        if response.status_code != 404:
            found.append(dict(response.json()))
    return found
