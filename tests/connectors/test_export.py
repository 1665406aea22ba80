"""The write-back options are opt-in: a stream that does not ask for soft-deleted rows
(HubSpot's contacts_export) never pushes a deletion, and counts nothing for it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Contact
from models.session import Database
from tests.connectors.harness import hubspot

pytestmark = pytest.mark.usefixtures("sync_worker")


def test_a_soft_deleted_row_is_not_pushed_by_a_stream_that_does_not_include_deleted(
    app_db: Database,
) -> None:
    with hubspot(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add(Contact(first_name="Ann", email="ann@example.test"))
        assert vendor.sync(streams=["contacts_export"]).records_processed == 1
        with app_db.tenant(vendor.org_id) as session:
            session.scalars(select(Contact)).one().soft_delete()
        pushed_before = len(vendor.sim.requests)

        run = vendor.sync(streams=["contacts_export"])

        assert (run.status, run.records_processed, run.records_failed) == ("success", 0, 0)
        assert vendor.sim.get_contact("ann@example.test") is not None
        assert len(vendor.sim.requests) == pushed_before
