"""Acme CRM: a connector someone else wrote, registered only through its entry point."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, CredentialField, MappedRecord, Page, Stream
from models.contacts import Contact


class OffsetPages:
    """Acme pages with ?offset=&count=; the last page is short."""

    def fetch(self, client: Any, stream: Stream, cursor: dict | None, state: dict) -> Page:
        offset = int((cursor or {}).get("offset", 0))
        body = client.request(
            "GET", stream.path, params={"offset": offset, "count": stream.page_size}
        ).json()
        people = body["people"]
        following = {"offset": offset + len(people)} if len(people) == stream.page_size else None
        return Page(people, following, key=f"offset:{offset}")


def map_person(person: dict) -> MappedRecord:
    return MappedRecord(
        external_id=str(person["ref"]),
        values={"first_name": person["given"], "email": person["mail"], "contact_type": "plug"},
    )


class Acme(Connector):
    provider = "acme"
    integration_type = "crm"
    default_base_url = "https://api.acme.example"
    credential_fields = (CredentialField("token"),)
    streams = (
        Stream(
            name="people",
            entity=Contact,
            path="/people",
            paginator=OffsetPages(),
            mapper=map_person,
            page_size=2,
        ),
    )
