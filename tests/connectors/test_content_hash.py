"""Links whose content hash was stored in the earlier form (the standard library's JSON
encoder, before the hash moved to orjson) still tell unchanged records from changed ones:
a re-sync of unchanged records writes nothing and audits nothing (and stores the new form),
a changed record is written once, and the write-back pushes nothing that did not change."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connectors import loading
from connectors.hubspot.mapping import CONTACT_COLUMNS
from connectors.upsert import HASH_PREFIX, apply_page, content_hash, same_content
from models import AuditLog, Contact, Integration
from models.bulk import jsonable
from models.session import Database
from models.sync_state import ExternalId
from tests.connectors.harness import Vendor, hubspot

pytestmark = pytest.mark.usefixtures("sync_worker")


def earlier_hash(values: dict[str, Any], deleted: bool = False) -> str:
    """The hash as it was stored before (values holding only text, as a contact's do)."""
    canonical = json.dumps({"v": values, "d": deleted}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_earlier_hashes(db: Database, vendor: Vendor) -> None:
    """Every contact link holds the earlier form of its row's hash (the mapping's columns,
    as synced), as a database synced before the change does."""
    with db.tenant(vendor.org_id) as session:
        rows = {row.id: row for row in session.scalars(select(Contact))}
        for link in session.scalars(select(ExternalId).where(ExternalId.entity_type == "contacts")):
            row = rows[link.local_id]
            link.content_hash = earlier_hash({c: getattr(row, c) for c in CONTACT_COLUMNS})


def state(db: Database, vendor: Vendor) -> tuple[dict[Any, Any], int, list[str]]:
    """When each contact and each link was last written, the contacts' audit rows, the
    links' hashes."""
    with db.tenant(vendor.org_id) as session:
        touched = {
            r.id: r.updated_at for r in session.execute(select(Contact.id, Contact.updated_at))
        }
        for link in session.scalars(select(ExternalId)):
            touched[link.external_id] = link.updated_at
        audits = len(
            session.scalars(select(AuditLog).where(AuditLog.table_name == "contacts")).all()
        )
        hashes = list(session.scalars(select(ExternalId.content_hash)))
    return touched, audits, hashes


def test_an_earlier_form_hash_of_an_unchanged_record_writes_nothing(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(4)
        assert vendor.sync(streams=["contacts"]).status == "success"
        store_earlier_hashes(app_db, vendor)
        touched, audits, hashes = state(app_db, vendor)
        assert not any(h.startswith(HASH_PREFIX) for h in hashes)

        run = vendor.sync(streams=["contacts"], full_refresh=True)

        assert (run.status, run.records_processed, run.records_failed) == ("success", 4, 0)
        after, audits_after, hashes_after = state(app_db, vendor)
        assert (after, audits_after) == (touched, audits)  # nothing written, nothing audited
        assert all(h.startswith(HASH_PREFIX) for h in hashes_after)  # the new form stored

        store_earlier_hashes(app_db, vendor)
        touched, audits, _ = state(app_db, vendor)
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            assert integration is not None
            connector = loading.open_connector(integration)
        stream = connector.stream("contacts")
        records = stream.paginator.fetch(loading.client_for(connector), stream, None, {}).records
        records[1]["properties"]["firstname"] = "Renamed"
        with app_db.tenant(vendor.org_id) as session:
            outcome = apply_page(session, vendor.integration_id, stream, records)
        assert (outcome.succeeded, outcome.written, outcome.failures) == (4, 1, [])
        after, audits_after, _ = state(app_db, vendor)
        assert audits_after == audits + 1  # the changed record, once
        assert sum(after[key] != touched[key] for key in touched) == 2  # its row and link


def test_an_earlier_form_hash_of_an_unchanged_row_is_not_pushed(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(3)
        assert vendor.sync(streams=["contacts"]).status == "success"
        store_earlier_hashes(app_db, vendor)
        pushed_before = len(vendor.sim.requests)

        run = vendor.sync(streams=["contacts_export"])

        assert (run.status, run.records_processed, run.records_failed) == ("success", 0, 0)
        assert len(vendor.sim.requests) == pushed_before
        with app_db.tenant(vendor.org_id) as session:
            contact = session.scalars(select(Contact).order_by(Contact.email)).first()
            assert contact is not None
            contact.job_title = "Changed here"
        run = vendor.sync(streams=["contacts_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)


def test_values_json_cannot_hold_hash_the_same_in_either_form() -> None:
    values = {
        "contact_id": uuid.UUID(int=7),
        "interaction_date": datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        "amount": Decimal("1.50"),
        "metadata_": {"counts": {3: "three"}, "big": 2**70},
    }
    digest = content_hash(values)
    assert digest.startswith(HASH_PREFIX) and len(digest) == 64
    assert content_hash({**values, "amount": Decimal("1.50")}) == digest
    assert content_hash(values, deleted=True) != digest
    assert same_content(digest, values) and same_content(earlier_hash(jsonable(values)), values)
    assert not same_content(earlier_hash(jsonable({**values, "amount": "2"})), values)
