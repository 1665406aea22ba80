"""Mailchimp members edited, deleted and added while a long listing is being paged: no
member falls between two pages, and the watermark never passes one that was not stored --
run by a real worker into PostgreSQL against the simulator over HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from models import Contact
from models.session import Database
from simulators.mailchimp.api import stamp
from simulators.mailchimp.server import MailchimpSimulator
from tests.connectors.harness import Vendor, mailchimp

pytestmark = pytest.mark.usefixtures("sync_worker")

MEMBERS = 5000
#: The first half shares seconds by the 1,200 (more than a page of 1,000), as after an
#: import; the second half changed one second apart.
TIED = 2500
#: Pages of the first listing followed by an edit, a delete and an addition.
EDITED_PAGES = 4


def seed(sim: MailchimpSimulator) -> None:
    start = sim.clock() - 2 * MEMBERS
    for i, key in enumerate(sim.add_members(MEMBERS, changed_from=start)):
        if i < TIED:
            sim.corrupt_member(key, last_changed=stamp(start + i // 1200))


def stored_emails(vendor: Vendor) -> Counter[str | None]:
    with vendor.db.tenant(vendor.org_id) as session:
        return Counter(session.scalars(select(Contact.email)))


def test_members_edited_deleted_and_added_mid_listing_are_each_stored_once(
    app_db: Database,
) -> None:
    sim = MailchimpSimulator()
    seed(sim)
    deleted: set[str] = set()
    pages = []

    def edit_behind_the_listing(ids: list[str]) -> None:
        """After each of the first pages: the page's first member is edited (it moves to
        the end), its second is deleted, and one member joins."""
        pages.append(len(ids))
        if len(pages) > EDITED_PAGES or len(ids) < 2:
            return
        n = len(pages)
        sim.update_member(ids[0], merge_fields={"LNAME": f"Edited{n}"})
        deleted.add(sim.member(ids[1])["email_address"])
        sim.delete_member(ids[1])
        sim.add_member(f"joined{n}@example.com")

    sim.on_page(edit_behind_the_listing)
    with mailchimp(app_db, sim=sim) as vendor:
        assert vendor.sync(streams=["members"]).status == "success"
        assert len(pages) > EDITED_PAGES  # the edits did happen while the listing was paged
        assert vendor.sync(streams=["members"]).status == "success"  # incremental

        listed = {member["email_address"] for member in sim.state.lists[sim.list_id].values()}
        assert len(listed) == MEMBERS
        stored = stored_emails(vendor)
        assert listed - set(stored) == set()  # nobody fell between two pages
        assert [email for email, times in stored.items() if times > 1] == []
        assert set(stored) - listed <= deleted  # only members deleted after being read
        with vendor.db.tenant(vendor.org_id) as session:
            edited = session.scalars(
                select(Contact.last_name).where(Contact.last_name.like("Edited%"))
            )
            assert sorted(name or "" for name in edited) == sorted(
                f"Edited{n}" for n in range(1, EDITED_PAGES + 1)
            )
