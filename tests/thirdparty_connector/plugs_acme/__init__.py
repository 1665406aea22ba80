"""Acme CRM: a connector someone else wrote, registered only through its entry point."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.base import Connector, CredentialField, JSONDict, MappedRecord, Stream
from connectors.http import VendorClient
from connectors.paging import OffsetPaginator
from core.errors import SkippableRecordError
from models.contacts import Contact


def map_person(person: JSONDict) -> MappedRecord:
    ref, mail = str(person["ref"]), str(person.get("mail") or "")
    if mail.count("@") != 1 or mail.startswith("@") or mail.endswith("@"):
        raise SkippableRecordError(f"invalid email address {mail!r}", record_id=ref)
    return MappedRecord(
        external_id=ref,
        values={"first_name": person["given"], "email": mail, "contact_type": "plug"},
        cursor_value=person.get("updated"),
    )


def fetch_people(client: VendorClient, stream: Stream, refs: Sequence[str]) -> list[JSONDict]:
    """People by ref (a replay); the ones gone since are left out."""
    found = []
    for ref in refs:
        response = client.request("GET", f"{stream.path}/{ref}")
        if response.status_code != 404:
            found.append(response.json())
    return found


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
            # Acme pages with ?offset=&count= (a short page is the last) and filters on
            # ?updated_since=: the SDK's paginator as it is.
            paginator=OffsetPaginator(
                records="people", limit_param="count", since_param="updated_since"
            ),
            mapper=map_person,
            primary_key="ref",
            cursor_field="updated",
            page_size=50,
            fetch_by_ids=fetch_people,
        ),
    )
