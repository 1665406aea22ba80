"""A vendor value longer than its column does not cost the record: the contact is stored
with the value cut to fit, the full value is kept in its metadata, and the run counts a
warning naming the field -- not a failure."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import AuditLog, Contact, ExternalId
from models.session import Database
from tests.connectors.harness import hubspot

pytestmark = pytest.mark.usefixtures("sync_worker")

LONG_TITLE = "Senior Vice President of " + "Strategic Partnerships, " * 15  # 385 characters


def test_a_job_title_longer_than_its_column_is_stored_cut_with_a_warning(
    app_db: Database,
) -> None:
    with hubspot(app_db) as vendor:
        ids = vendor.sim.add_contacts(150)
        vendor.sim.update_contact(ids[42], jobtitle=LONG_TITLE)
        run = vendor.sync(streams=["contacts"], full_refresh=True)

        assert (run.status, run.records_processed, run.records_failed) == ("success", 150, 0)
        assert run.error_details["failures"] == []
        [warning] = run.error_details["warnings"]
        assert warning["stream"] == "contacts" and warning["record_id"] == ids[42]
        assert "job_title" in warning["reason"] and "255" in warning["reason"]
        with app_db.tenant(vendor.org_id) as session:
            link = session.scalars(
                select(ExternalId).where(ExternalId.external_id == ids[42])
            ).one()
            contact = session.get(Contact, link.local_id)
            assert contact is not None
            assert contact.job_title == LONG_TITLE.strip()[:255]
            assert contact.metadata_["untruncated"] == {"job_title": LONG_TITLE.strip()}
            audited = session.scalar(
                select(AuditLog.new_values).where(AuditLog.record_id == contact.id)
            )
            assert audited["metadata"]["untruncated"]["job_title"] == LONG_TITLE.strip()

        again = vendor.sync(streams=["contacts"], full_refresh=True)
        assert (again.status, again.records_processed, again.records_failed) == (
            "success",
            150,
            0,
        )
        assert vendor.audit_rows("contacts") == 150  # the second run wrote nothing


def test_a_value_the_database_refuses_costs_only_its_record_in_a_batch_of_pages(
    app_db: Database,
) -> None:
    """Pages are written several at once; a value PostgreSQL refuses (a NUL character in
    text) fails that one record with the database's reason, and the other pages and
    records of the batch are stored."""
    with hubspot(app_db) as vendor:
        ids = vendor.sim.add_contacts(350)  # four pages: one batch
        vendor.sim.update_contact(ids[170], firstname="Nul\x00Byte")
        run = vendor.sync(streams=["contacts"], full_refresh=True)

        assert (run.records_processed, run.records_failed) == (349, 1)
        [failure] = run.error_details["failures"]
        assert failure["record_id"] == ids[170] and "Unicode" in failure["reason"]
        assert vendor.audit_rows("contacts") == 349

        again = vendor.sync(streams=["contacts"], full_refresh=True)
        assert (again.records_processed, again.records_failed) == (349, 1)
        assert vendor.audit_rows("contacts") == 349  # the second run wrote nothing new
