"""Mailchimp end to end beyond the conformance suite: write-back that never re-subscribes,
merge fields and tags, incremental member imports, campaign activity, and echoes of our
own writes -- run by a real worker into PostgreSQL against the simulator over HTTP."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from connectors.loading import open_connector
from connectors.mailchimp.mapping import subscriber_hash
from models import Contact, ContactInteraction, Integration, SyncStreamRun
from models.session import Database
from tests.connectors.harness import Vendor, mailchimp

pytestmark = pytest.mark.usefixtures("sync_worker")


def add_contacts(vendor: Vendor, *contacts: Contact) -> None:
    with vendor.db.tenant(vendor.org_id) as session:
        session.add_all(contacts)


def contact(vendor: Vendor, email: str) -> Contact:
    with vendor.db.tenant(vendor.org_id) as session:
        return session.scalars(select(Contact).where(Contact.email == email)).one()


def tags(vendor: Vendor, key: str) -> set[str]:
    return {tag["name"] for tag in vendor.sim.member(key)["tags"]}


def test_an_export_never_resubscribes_unsubscribed_or_cleaned_members(app_db: Database) -> None:
    with mailchimp(app_db) as vendor:
        vendor.sim.add_member("gone@example.test", status="unsubscribed")
        vendor.sim.add_member("bounced@example.test", status="cleaned")
        add_contacts(
            vendor,
            Contact(first_name="Gone", email="gone@example.test", status="hot_lead"),
            Contact(first_name="Bounced", email="bounced@example.test"),
            Contact(first_name="Newcomer", email="new@example.test"),
        )
        run = vendor.sync(streams=["members_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 3, 0)
        gone = vendor.sim.member("gone@example.test")
        assert gone["status"] == "unsubscribed"  # updated, yet still unsubscribed
        assert gone["merge_fields"]["FNAME"] == "Gone"
        assert "status:hot_lead" in tags(vendor, "gone@example.test")
        assert vendor.sim.member("bounced@example.test")["status"] == "cleaned"
        assert vendor.sim.member("new@example.test")["status"] == "subscribed"
        assert contact(vendor, "gone@example.test").metadata_["mailchimp"]["status"] == (
            "unsubscribed"
        )


def test_new_members_get_the_configured_status_if_new(app_db: Database) -> None:
    with mailchimp(app_db, status_if_new="pending") as vendor:
        add_contacts(vendor, Contact(first_name="Opt", email="optin@example.test"))
        assert vendor.sync(streams=["members_export"]).status == "success"
        assert vendor.sim.member("optin@example.test")["status"] == "pending"


def test_merge_fields_tags_and_the_subscriber_hash(app_db: Database) -> None:
    with mailchimp(app_db) as vendor:
        add_contacts(
            vendor,
            Contact(
                first_name="Jane",
                last_name="Doe",
                email="Jane.Doe@Example.com",
                phone="+15550100",
                company="Acme",
                status="hot_lead",
                priority="high",
                industry="Software",
            ),
        )
        assert vendor.sync(streams=["members_export"]).status == "success"
        jane_id = "0cba00ca3da1b283a57287bcceb17e35"  # md5("jane.doe@example.com")
        assert subscriber_hash("Jane.Doe@Example.com") == jane_id
        puts = [r.path for r in vendor.sim.requests if r.method == "PUT"]
        assert puts == [f"/3.0/lists/{vendor.sim.list_id}/members/{jane_id}"]
        member = vendor.sim.member(jane_id)
        assert member["merge_fields"] == {
            "FNAME": "Jane",
            "LNAME": "Doe",
            "PHONE": "+15550100",
            "COMPANY": "Acme",
        }
        assert tags(vendor, jane_id) == {"status:hot_lead", "priority:high", "industry:Software"}

        vendor.sim.corrupt_member(jane_id, tags=[*member["tags"], {"id": 1, "name": "VIP"}])
        with vendor.db.tenant(vendor.org_id) as session:
            jane = session.scalars(select(Contact)).one()
            jane.status = "existing_client"
        assert vendor.sync(streams=["members_export"]).records_processed == 1
        assert tags(vendor, jane_id) == {
            "status:existing_client",
            "priority:high",
            "industry:Software",
            "VIP",
        }
        audits = vendor.audit_rows()
        assert vendor.sync(streams=["members"], full_refresh=True).status == "success"
        assert vendor.audit_rows() == audits  # our own write came back: nothing changed
        assert vendor.sync(streams=["members_export"]).records_processed == 0


def test_an_incremental_import_updates_status_and_creates_new_members(app_db: Database) -> None:
    with mailchimp(app_db) as vendor:
        first, *_ = vendor.sim.add_members(3)
        assert vendor.sync(streams=["members"]).records_processed == 3
        vendor.sim.update_member(first, status="unsubscribed", merge_fields={"LNAME": "Moved"})
        vendor.sim.add_member("late@example.test", merge_fields={"FNAME": "Late"})
        run = vendor.sync(streams=["members"])
        assert run.status == "success" and run.records_processed < 3 + 1
        assert vendor.count(Contact) == 4
        email = vendor.sim.member(first)["email_address"]
        updated = contact(vendor, email)
        assert updated.metadata_["mailchimp"]["status"] == "unsubscribed"
        assert updated.last_name == "Moved"
        assert contact(vendor, "late@example.test").first_name == "Late"
        since = [r.query.get("since_last_changed") for r in vendor.sim.requests]
        assert since[0] is None and since[-1] is not None


def test_campaign_activity_becomes_email_interactions(app_db: Database) -> None:
    with mailchimp(app_db) as vendor:
        sim = vendor.sim
        sim.add_member("ann@example.test")
        sim.add_member("bob@example.test")
        campaign = sim.send_campaign("Spring news", ["ann@example.test", "bob@example.test"])
        sim.record_activity(campaign, "ann@example.test", "open")
        sim.record_activity(campaign, "ann@example.test", "click", url="https://acme.test/offer")
        sim.record_activity(campaign, "bob@example.test", "bounce", type="hard")
        run = vendor.sync()
        assert (run.status, run.records_processed, run.records_failed) == ("success", 7, 0)
        with app_db.tenant(vendor.org_id) as session:
            rows = session.execute(
                select(Contact.email, ContactInteraction.outcome, ContactInteraction.subject)
                .join(Contact, Contact.id == ContactInteraction.contact_id)
                .where(ContactInteraction.interaction_type == "email")
            ).all()
        assert sorted((email, outcome) for email, outcome, _ in rows) == [
            ("ann@example.test", "click"),
            ("ann@example.test", "open"),
            ("ann@example.test", "sent"),
            ("bob@example.test", "bounce"),
            ("bob@example.test", "sent"),
        ]
        assert {subject for *_, subject in rows} >= {"Open: Spring news", "Sent: Spring news"}

        assert vendor.sync().status == "success"
        assert vendor.count(ContactInteraction) == 5
        sim.record_activity(campaign, "bob@example.test", "open", at=time.time() + 5)
        assert vendor.sync(streams=["activity"]).status == "success"
        assert vendor.count(ContactInteraction) == 6


def test_an_exported_change_that_comes_back_by_webhook_is_not_applied_twice(
    app_db: Database,
) -> None:
    with mailchimp(app_db) as vendor:
        add_contacts(vendor, Contact(first_name="Echo", last_name="Lee", email="echo@example.test"))
        assert vendor.sync(streams=["members_export"]).status == "success"
        audits = vendor.audit_rows()
        _, body = vendor.sim.webhook_delivery("profile", "echo@example.test")
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            session.expunge(integration)
        conn = open_connector(integration)
        from connectors.base import WebhookRequest

        request = WebhookRequest("POST", "https://hooks.test/mc", {}, body, time.time())
        [event] = conn.parse_webhook(request)
        with app_db.tenant(vendor.org_id) as session:
            conn.apply_webhook_event(session, event)
        assert vendor.audit_rows() == audits
        assert contact(vendor, "echo@example.test").first_name == "Echo"


def test_an_address_changed_in_mailchimp_updates_the_same_contact(app_db: Database) -> None:
    with mailchimp(app_db) as vendor:
        first, second = vendor.sim.add_members(2)
        assert vendor.sync(streams=["members"]).records_processed == 2
        before = contact(vendor, vendor.sim.member(first)["email_address"])
        vendor.sim.update_member(first, email_address="renamed@example.test")
        assert vendor.sync(streams=["members"]).status == "success"
        assert vendor.count(Contact) == 2
        after = contact(vendor, "renamed@example.test")
        assert after.id == before.id
        assert after.metadata_["mailchimp"]["id"] == subscriber_hash("renamed@example.test")


def test_an_address_changed_here_moves_the_member_instead_of_adding_one(
    app_db: Database,
) -> None:
    with mailchimp(app_db) as vendor:
        add_contacts(vendor, Contact(first_name="Mo", email="mo@example.test"))
        assert vendor.sync(streams=["members_export"]).status == "success"
        with app_db.tenant(vendor.org_id) as session:
            mo = session.scalars(select(Contact)).one()
            mo.email = "mo@new.example.test"
        run = vendor.sync(streams=["members_export"])
        assert (run.status, run.records_processed) == ("success", 1)
        members = vendor.sim.state.lists[vendor.sim.list_id]
        assert [m["email_address"] for m in members.values()] == ["mo@new.example.test"]
        assert vendor.sync(streams=["members_export"]).records_processed == 0


def test_a_write_back_of_many_batches_chains_them_without_the_stall_sweeper(
    app_db: Database,
) -> None:
    """1,200 contacts: two scans of 1,000 and 12 batches of 100 pushed, each chained to
    the next by the page that finished it (no beat runs here, so a stall would never end)."""
    with mailchimp(app_db) as vendor:
        add_contacts(
            vendor,
            *(Contact(first_name=f"N{i}", email=f"n{i}@example.test") for i in range(1_200)),
        )
        run = vendor.sync(streams=["members_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1_200, 0)
        assert len(vendor.sim.requests.where(method="PUT")) == 1_200
        with vendor.db.tenant(vendor.org_id) as session:
            [stream] = session.scalars(
                select(SyncStreamRun).where(SyncStreamRun.run_id == run.id)
            ).all()
        assert stream.pages_done >= 2
        assert stream.last_error is None  # the sweeper never had to enqueue a page again
