"""The SDK's paginators (connectors.paging) against fake vendors at the HTTP boundary:
offset/limit, cursor tokens and next links, walked to the end through a VendorClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.base import JSONDict, MappedRecord, Page, Stream
from connectors.http import UnsafeURLError, VendorClient
from connectors.paging import CursorPaginator, NextLinkPaginator, OffsetPaginator
from core.errors import ConfigError
from models import Contact

BASE = "https://api.vendor.example"
PEOPLE = [{"id": str(i), "updated": f"2030-01-01T00:00:{i:02d}Z"} for i in range(7)]
Handler = Callable[[httpx.Request], httpx.Response]


def stream(paginator: Any, page_size: int = 3) -> Stream:
    return Stream(
        name="people",
        entity=Contact,
        path="/people",
        paginator=paginator,
        mapper=lambda record: MappedRecord(record["id"], {}),
        cursor_field="updated",
        page_size=page_size,
    )


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(seen: list[httpx.Request]) -> Iterator[Callable[[Handler], VendorClient]]:
    clients: list[VendorClient] = []

    def make(vendor: Handler) -> VendorClient:
        def logged(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return vendor(request)

        made = VendorClient(
            name="vendor",
            base_url=BASE,
            transport=httpx.MockTransport(logged),
            allow_private=False,
            max_attempts=1,
        )
        clients.append(made)
        return made

    yield make
    for each in clients:
        each.close()


def walk(paginator: Any, vendor: VendorClient, state: JSONDict, page_size: int = 3) -> list[Page]:
    """Every page of the stream, as the engine asks for them."""
    pages, cursor = [], None
    while True:
        page = paginator.fetch(vendor, stream(paginator, page_size), cursor, state)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def offset_vendor(request: httpx.Request) -> httpx.Response:
    """``?offset=&count=[&since=]``; says how many there are in all."""
    params = request.url.params
    since = params.get("since", "")
    found = [p for p in PEOPLE if p["updated"] >= since]
    offset, count = int(params["offset"]), int(params["count"])
    return httpx.Response(200, json={"people": found[offset : offset + count], "total": len(found)})


def test_offset_pages_end_at_a_short_page_and_keep_the_watermark_they_started_with(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    paginator = OffsetPaginator(records="people", limit_param="count", since_param="since")
    since = PEOPLE[2]["updated"]
    pages = walk(paginator, client(offset_vendor), {"cursor": since})
    assert [[p["id"] for p in page.records] for page in pages] == [["2", "3", "4"], ["5", "6"]]
    assert [dict(r.url.params) for r in seen] == [
        {"since": since, "offset": "0", "count": "3"},
        {"since": since, "offset": "3", "count": "3"},
    ]
    assert [page.key for page in pages] == [f"offset:{since}:0", f"offset:{since}:3"]


def test_offset_pages_with_a_total_stop_at_it_without_asking_for_an_empty_page(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    paginator = OffsetPaginator(records="people", limit_param="count", total="total")
    records = list(paginator.each(client(offset_vendor), "/people", page_size=7))
    assert [p["id"] for p in records] == [p["id"] for p in PEOPLE]
    assert len(seen) == 1  # a short-page rule would have asked for a second, empty page


def test_the_page_size_is_capped_at_the_vendors_largest(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    paginator = OffsetPaginator(records="people", limit_param="count", max_limit=2)
    pages = walk(paginator, client(offset_vendor), {}, page_size=100)
    assert [len(page.records) for page in pages] == [2, 2, 2, 1]
    assert {r.url.params["count"] for r in seen} == {"2"}


def cursor_vendor(request: httpx.Request) -> httpx.Response:
    """``?after=TOKEN``: the next token nested in ``paging.next.after``, none on the last."""
    start = int(request.url.params.get("after", "0"))
    end = start + int(request.url.params["limit"])
    body: JSONDict = {"results": PEOPLE[start:end]}
    if end < len(PEOPLE):
        body["paging"] = {"next": {"after": str(end)}}
    return httpx.Response(200, json=body)


def test_cursor_pages_follow_the_token_until_there_is_none(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    pages = walk(CursorPaginator(), client(cursor_vendor), {})
    assert [len(page.records) for page in pages] == [3, 3, 1]
    assert [r.url.params.get("after") for r in seen] == [None, "3", "6"]
    assert [page.next_cursor for page in pages] == [
        {"since": None, "after": "3"},
        {"since": None, "after": "6"},
        None,
    ]


def link_vendor(elsewhere: str | None = None) -> Handler:
    """The first page at the path, then ``next`` URLs (the second one on ``elsewhere``)."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "0"))
        body: JSONDict = {"value": PEOPLE[page * 3 : page * 3 + 3]}
        if (page + 1) * 3 < len(PEOPLE):
            host = elsewhere if elsewhere and page == 1 else BASE
            body["@odata.nextLink"] = f"{host}/people?page={page + 1}"
        return httpx.Response(200, json=body)

    return answer


def test_next_links_are_followed_on_the_vendors_host(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    paginator = NextLinkPaginator(records="value", next_link="@odata.nextLink", limit_param="$top")
    pages = walk(paginator, client(link_vendor()), {"cursor": "2030"})
    assert [len(page.records) for page in pages] == [3, 3, 1]
    assert [str(r.url) for r in seen][1:] == [f"{BASE}/people?page=1", f"{BASE}/people?page=2"]
    assert pages[0].key == "first:2030" and pages[1].key.startswith("next:")


def test_a_next_link_to_another_host_is_refused_before_it_is_requested(
    client: Callable[[Handler], VendorClient], seen: list[httpx.Request]
) -> None:
    paginator = NextLinkPaginator(records="value", next_link="@odata.nextLink")
    vendor = client(link_vendor(elsewhere="https://collector.evil.example"))
    with pytest.raises(UnsafeURLError, match="not one of the vendor's hosts"):
        walk(paginator, vendor, {})
    assert {r.url.host for r in seen} == {"api.vendor.example"}


def gone(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"error": "no such list"})


def test_a_missing_collection_is_a_configuration_error_naming_it(
    client: Callable[[Handler], VendorClient],
) -> None:
    paginator = OffsetPaginator(records="people", missing="Vendor has no {path} (check it)")
    with pytest.raises(ConfigError, match=r"Vendor has no /people \(check it\)"):
        walk(paginator, client(gone), {})


def test_a_collection_whose_parent_is_gone_can_be_an_empty_last_page(
    client: Callable[[Handler], VendorClient],
) -> None:
    [page] = walk(CursorPaginator(records="registrants", missing=None), client(gone), {})
    assert (page.records, page.next_cursor) == ([], None)
