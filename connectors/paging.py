"""The three shapes of vendor paging, as paginators a stream declares.

* :class:`OffsetPaginator`: ``?offset=&limit=``; the last page is short, or the body says
  how many records there are in all (``total``).
* :class:`CursorPaginator`: ``?after=TOKEN``; the body carries the next page's token
  (e.g. ``paging.next.after``) and no token means the last page.
* :class:`NextLinkPaginator`: the first page from the stream's path, then the URL the body
  gives for the next one, fetched through :meth:`VendorClient.follow`, so a link to a host
  that is not the vendor's is refused.

Each is a :class:`~connectors.base.Paginator` (``fetch``, for a stream as it is) and can
also read one page of any path (``page``) or every record of one (``each``), for vendor
paginators that walk several collections (one per meeting, per campaign) or keep a cursor
of their own.  An incremental run passes the stream's watermark as ``since_param``; the
watermark the run started with is kept in the cursor, so every page of the run asks the
same question.  Vendor quirks (other filters, sort orders, records to relink) stay in the
vendor's package, around these::

    Stream(name="people", entity=Contact, path="/people", cursor_field="updated",
           paginator=OffsetPaginator(records="people", limit_param="count",
                                     since_param="updated_since"),
           mapper=map_person)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import JSONDict, Page, Stream
from core.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from connectors.http import VendorClient

Params = Mapping[str, Any]
#: What a 404 on a collection says unless a paginator says otherwise.
MISSING = "{path} was not found (404): check the integration's settings"


@dataclass(frozen=True)
class _Collection:
    """What the three shapes share: where the records are, what a 404 means, the query
    parameters of every request and of an incremental run."""

    #: The body's field that holds the page's records.
    records: str = "results"
    #: The query parameter of the page size (None: the vendor's own size).
    limit_param: str | None = "limit"
    #: The vendor's largest page; the stream's ``page_size`` is capped to it.
    max_limit: int | None = None
    #: The query parameter an incremental run puts the watermark in (None: none).
    since_param: str | None = None
    #: Query parameters of every request of the stream (a sort order, fields to leave out).
    params: tuple[tuple[str, str], ...] = ()
    #: Headers of every request.
    headers: tuple[tuple[str, str], ...] = ()
    #: The :class:`ConfigError` message (``{path}`` filled in) for a 404; None: a 404 is
    #: an empty last page (the collection's parent is gone).
    missing: str | None = MISSING

    def limit(self, page_size: int) -> int:
        return page_size if self.max_limit is None else min(page_size, self.max_limit)

    def since_params(self, stream: Stream, since: str | None) -> dict[str, Any]:
        """The query parameters that ask only for what changed since ``since``."""
        return {self.since_param: since} if since and self.since_param else {}

    def _body(self, response: httpx.Response, path: str) -> JSONDict:
        if response.status_code == 404:
            if self.missing is None:
                return {}
            raise ConfigError(self.missing.format(path=path))
        body = response.json()
        return body if isinstance(body, dict) else {}

    def _records(self, body: JSONDict) -> list[JSONDict]:
        return list(body.get(self.records) or [])

    def _get(self, client: VendorClient, path: str, params: Params) -> JSONDict:
        query = {**dict(self.params), **params}
        response = client.request("GET", path, params=query, headers=dict(self.headers))
        return self._body(response, path)


def _dig(body: JSONDict, path: str | tuple[str, ...]) -> Any:
    """``body[a][b][c]`` for ``(a, b, c)`` (a string is one key), None where absent."""
    found: Any = body
    for key in (path,) if isinstance(path, str) else path:
        found = found.get(key) if isinstance(found, dict) else None
    return found


@dataclass(frozen=True)
class OffsetPaginator(_Collection):
    """``?offset=N&limit=M``: the next page starts ``M`` further; the last page is short,
    or, with ``total``, the one that reaches the body's count of all records."""

    offset_param: str = "offset"
    #: The body's field with the number of records in all (None: a short page is the last).
    total: str | None = None
    #: Names the pages in their keys (``name:since:offset``).
    name: str = "offset"

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        cursor = cursor or {}
        since = cursor.get("since", state.get("cursor"))
        offset = int(cursor.get("offset", 0))
        params = self.since_params(stream, since)
        records, following = self.page(
            client, stream.path, offset, page_size=stream.page_size, params=params
        )
        next_cursor = None if following is None else {"since": since, "offset": following}
        return Page(records, next_cursor, key=f"{self.name}:{since or ''}:{offset}")

    def page(
        self,
        client: VendorClient,
        path: str,
        offset: int = 0,
        *,
        page_size: int,
        params: Params | None = None,
    ) -> tuple[list[JSONDict], int | None]:
        """The records of ``path`` from ``offset``, and the next page's offset (None: last)."""
        limit = self.limit(page_size)
        query = {**(params or {}), self.offset_param: offset}
        if self.limit_param:
            query[self.limit_param] = limit
        body = self._get(client, path, query)
        records = self._records(body)
        if self.total is not None:
            more = bool(records) and offset + limit < int(body.get(self.total) or 0)
        else:
            more = len(records) >= limit
        return records, offset + limit if more else None

    def each(
        self, client: VendorClient, path: str, *, page_size: int, params: Params | None = None
    ) -> Iterator[JSONDict]:
        """Every record of ``path``, page after page."""
        offset: int | None = 0
        while offset is not None:
            records, offset = self.page(client, path, offset, page_size=page_size, params=params)
            yield from records


@dataclass(frozen=True)
class CursorPaginator(_Collection):
    """``?after=TOKEN``: the body names the next page's token; no token, no next page."""

    token_param: str = "after"
    #: Where the body holds the next token: a field, or the path to a nested one.
    next_token: str | tuple[str, ...] = ("paging", "next", "after")
    #: Names the pages in their keys (``name:since:token``).
    name: str = "cursor"

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        cursor = cursor or {}
        since, token = cursor.get("since", state.get("cursor")), cursor.get("after")
        params = self.since_params(stream, since)
        records, following = self.page(
            client, stream.path, token, page_size=stream.page_size, params=params
        )
        next_cursor = None if following is None else {"since": since, "after": following}
        return Page(records, next_cursor, key=f"{self.name}:{since or ''}:{token or ''}")

    def page(
        self,
        client: VendorClient,
        path: str,
        token: str | None = None,
        *,
        page_size: int,
        params: Params | None = None,
    ) -> tuple[list[JSONDict], str | None]:
        """The records of ``path`` from ``token`` (None: the first page), and the next
        page's token (None: this was the last)."""
        query = dict(params or {})
        if self.limit_param:
            query[self.limit_param] = self.limit(page_size)
        if token:
            query[self.token_param] = token
        body = self._get(client, path, query)
        following = _dig(body, self.next_token)
        return self._records(body), str(following) if following else None

    def each(
        self, client: VendorClient, path: str, *, page_size: int, params: Params | None = None
    ) -> Iterator[JSONDict]:
        """Every record of ``path``, page after page."""
        token: str | None = None
        while True:
            records, token = self.page(client, path, token, page_size=page_size, params=params)
            yield from records
            if token is None:
                return


@dataclass(frozen=True)
class NextLinkPaginator(_Collection):
    """The first page from the path; each page's body gives the URL of the next one."""

    #: Where the body holds the next page's URL: a field, or the path to a nested one.
    next_link: str | tuple[str, ...] = "next"

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        link = (cursor or {}).get("next")
        since = state.get("cursor")
        params = None if link else self.since_params(stream, since)
        records, following = self.page(
            client, stream.path, link, page_size=stream.page_size, params=params
        )
        if link:
            key = "next:" + hashlib.sha256(link.encode()).hexdigest()[:40]
        else:
            key = f"first:{since or ''}"
        return Page(records, {"next": following} if following else None, key)

    def page(
        self,
        client: VendorClient,
        path: str,
        link: str | None = None,
        *,
        page_size: int,
        params: Params | None = None,
    ) -> tuple[list[JSONDict], str | None]:
        """The records of the page at ``link`` (None: the first page of ``path``), and the
        next page's URL (None: this was the last).  A link is followed as the vendor gave
        it, only on the vendor's hosts."""
        if link:
            response = client.follow(link, headers=dict(self.headers))
            body = self._body(response, path)
        else:
            query = dict(params or {})
            if self.limit_param:
                query[self.limit_param] = self.limit(page_size)
            body = self._get(client, path, query)
        following = _dig(body, self.next_link)
        return self._records(body), str(following) if following else None

    def each(
        self, client: VendorClient, path: str, *, page_size: int, params: Params | None = None
    ) -> Iterator[JSONDict]:
        """Every record of ``path``, link after link."""
        link: str | None = None
        while True:
            records, link = self.page(client, path, link, page_size=page_size, params=params)
            yield from records
            if link is None:
                return


__all__ = ["CursorPaginator", "NextLinkPaginator", "OffsetPaginator"]
