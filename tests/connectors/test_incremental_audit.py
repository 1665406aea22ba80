"""Changed records of an incremental sync: each gets exactly one audit row holding the
columns that changed (old and new values, as the flush listener writes them), a re-run
writes nothing, and a change made for an API key names it in the audit row."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from connectors import loading
from connectors.upsert import apply_page
from models import AuditLog, Contact, Integration
from models.audit_trail import Actor, act_as
from models.bulk import jsonable
from models.session import Database
from tests.connectors.harness import Vendor, hubspot

pytestmark = pytest.mark.usefixtures("sync_worker")


def _contacts(db: Database, vendor: Vendor) -> dict[uuid.UUID, dict[str, Any]]:
    columns = [c.name for c in Contact.__table__.columns]
    with db.tenant(vendor.org_id) as session:
        rows = session.execute(select(Contact.__table__)).mappings().all()
        return {row["id"]: {c: row[c] for c in columns} for row in rows}


def _updates(db: Database, vendor: Vendor) -> list[AuditLog]:
    with db.tenant(vendor.org_id) as session:
        return list(
            session.scalars(
                select(AuditLog).where(
                    AuditLog.table_name == "contacts", AuditLog.action != "create"
                )
            )
        )


def test_an_incremental_rerun_audits_exactly_the_changed_contacts(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        ids = vendor.sim.add_contacts(60)
        assert vendor.sync(streams=["contacts"]).status == "success"
        before = _contacts(app_db, vendor)
        changed = ids[::7]
        for number, contact_id in enumerate(changed):
            vendor.sim.update_contact(contact_id, firstname=f"Renamed {number}")
        run = vendor.sync(streams=["contacts"])
        assert (run.status, run.records_failed) == ("success", 0)
        after = _contacts(app_db, vendor)
        audits = _updates(app_db, vendor)
        assert len(audits) == len(changed)
        assert sorted(a.new_values["first_name"] for a in audits) == sorted(
            f"Renamed {n}" for n in range(len(changed))
        )
        for audit in audits:  # the columns that changed, and only those, old and new
            old, new = before[audit.record_id], after[audit.record_id]
            differ = [c for c in old if c != "updated_at" and old[c] != new[c]]
            assert audit.action == "update" and audit.metadata_ == {}
            assert audit.old_values == {c: jsonable(old[c]) for c in differ}
            assert audit.new_values == {c: jsonable(new[c]) for c in differ}
            assert new["updated_at"] > old["updated_at"]
        unchanged = set(before) - {a.record_id for a in audits}
        assert all(after[i] == before[i] for i in unchanged)

        assert vendor.sync(streams=["contacts"]).status == "success"  # nothing new
        assert len(_updates(app_db, vendor)) == len(changed)
        assert _contacts(app_db, vendor) == after


def test_a_change_made_for_an_api_key_names_it_in_the_audit_row(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(3)
        assert vendor.sync(streams=["contacts"]).status == "success"
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            assert integration is not None
            connector = loading.open_connector(integration)
        stream = connector.stream("contacts")
        page = stream.paginator.fetch(loading.client_for(connector), stream, None, {})
        records = copy.deepcopy(page.records)
        records[0]["properties"]["firstname"] = "Keyed"
        actor = Actor("api_key", uuid.uuid4(), "ci key", "POST /api/v1/runs")
        act_as(actor)
        try:
            with app_db.tenant(vendor.org_id) as session:
                outcome = apply_page(session, vendor.integration_id, stream, records)
        finally:
            act_as(None)
        assert (outcome.succeeded, outcome.written, outcome.failures) == (3, 1, [])
        (audit,) = _updates(app_db, vendor)
        assert audit.new_values == {"first_name": "Keyed"}
        assert audit.metadata_ == actor.metadata()
