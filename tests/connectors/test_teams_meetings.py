"""Teams meetings kept in step with our events, attendance read back, the app token cached,
and Graph's nextLink followed only on Graph's hosts: through a real worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from models import Event, EventAttendee
from models.accounts import create_user
from models.session import Database
from models.sync_state import ExternalId
from simulators.teams.server import GraphSimulator
from tests.connectors.harness import Vendor, teams

ORGANIZER = "organizer@contoso.test"
TEAMS = {"meeting_platform": "teams"}


@pytest.fixture(autouse=True)
def _worker(sync_worker: Any) -> None:
    return None


def _local_event(
    vendor: Vendor,
    *,
    start: datetime,
    title: str = "Quarterly review",
    status: str = "published",
    settings: dict[str, Any] | None = None,
    venue_details: dict[str, Any] | None = None,
) -> uuid.UUID:
    with vendor.db.tenant(vendor.org_id) as session:
        event = Event(
            title=title,
            event_type="meeting",
            status=status,
            start_date=start,
            end_date=start + timedelta(hours=1),
            settings=TEAMS if settings is None else settings,
            venue_details=venue_details or {},
        )
        session.add(event)
        session.flush()
        return event.id


def _event(vendor: Vendor, event_id: uuid.UUID) -> Event:
    with vendor.db.tenant(vendor.org_id) as session:
        return session.scalars(
            select(Event).where(Event.id == event_id).execution_options(include_deleted=True)
        ).one()


def _calls(vendor: Vendor, method: str) -> int:
    return len(vendor.sim.requests.where(method=method, path_contains="/events"))


def test_an_event_that_asks_for_teams_gets_a_meeting_kept_in_step_and_cancelled(
    app_db: Database,
) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        event_id = _local_event(vendor, start=datetime.now(UTC) + timedelta(days=2))
        run = vendor.sync(streams=["meetings"])
        assert (run.status, run.records_processed) == ("success", 1)
        online = _event(vendor, event_id).venue_details["online_meeting"]
        graph_event = vendor.sim.event(online["event_id"])
        assert graph_event["isOnlineMeeting"] and graph_event["subject"] == "Quarterly review"
        assert online["join_url"] == graph_event["onlineMeeting"]["joinUrl"]
        assert online["join_url"].startswith("https://teams.microsoft.com/l/meetup-join/")

        with app_db.tenant(vendor.org_id) as session:
            row = session.get(Event, event_id)
            row.title = "Quarterly review (moved)"
            row.start_date += timedelta(hours=2)
            row.end_date += timedelta(hours=2)
            moved = (row.start_date, row.end_date)
        assert vendor.sync(streams=["meetings"]).records_processed == 1
        graph_event = vendor.sim.event(online["event_id"])
        assert graph_event["subject"] == "Quarterly review (moved)"
        assert (graph_event["start"]["timeZone"], graph_event["end"]["timeZone"]) == ("UTC", "UTC")
        assert (
            datetime.fromisoformat(graph_event["start"]["dateTime"]).replace(tzinfo=UTC),
            datetime.fromisoformat(graph_event["end"]["dateTime"]).replace(tzinfo=UTC),
        ) == moved
        patches = [r for r in vendor.sim.requests if r.method == "PATCH"]
        assert len(patches) == 1
        assert vendor.sync(streams=["meetings"]).records_processed == 0  # nothing changed

        with app_db.tenant(vendor.org_id) as session:
            session.get(Event, event_id).status = "cancelled"
        assert vendor.sync(streams=["meetings"]).records_processed == 1
        assert vendor.sim.event(online["event_id"]) is None and _calls(vendor, "DELETE") == 1
        assert _event(vendor, event_id).status == "cancelled"
        again = vendor.sync(streams=["meetings"])  # the cancellation is settled
        assert (again.status, again.records_processed) == ("success", 0)
        assert _calls(vendor, "DELETE") == 1


def test_a_soft_deleted_event_has_its_teams_meeting_deleted_once(app_db: Database) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        start = datetime.now(UTC) + timedelta(days=2)
        kept = _local_event(vendor, start=start, title="Kept")
        dropped = _local_event(vendor, start=start, title="Dropped")
        vendor.sync(streams=["meetings"])
        graph_id = _event(vendor, dropped).venue_details["online_meeting"]["event_id"]
        with app_db.tenant(vendor.org_id) as session:
            session.get(Event, dropped).soft_delete()
            never_synced = Event(
                title="Deleted before any export",
                event_type="meeting",
                status="published",
                start_date=start,
                settings=TEAMS,
            )
            session.add(never_synced)
            session.flush()
            never_synced.soft_delete()

        run = vendor.sync(streams=["meetings"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        assert vendor.sim.event(graph_id) is None
        assert [e["subject"] for e in vendor.sim.store.events.values()] == ["Kept"]
        assert (_calls(vendor, "DELETE"), _calls(vendor, "POST")) == (1, 2)

        again = vendor.sync(streams=["meetings"])
        assert (again.status, again.records_processed) == ("success", 0)
        assert _calls(vendor, "DELETE") == 1
        assert vendor.count(Event) == 1 and vendor.count(Event, include_deleted=True) == 3
        assert _event(vendor, kept).venue_details["online_meeting"]["join_url"]


def test_drafts_and_events_that_do_not_ask_for_teams_are_neither_pushed_nor_counted(
    app_db: Database,
) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        start = datetime.now(UTC) + timedelta(days=2)
        published = _local_event(vendor, start=start, title="Published")
        _local_event(vendor, start=start, title="Draft", status="draft")
        _local_event(vendor, start=start, title="Cancelled early", status="cancelled")
        _local_event(vendor, start=start, title="In person", settings={})
        _local_event(vendor, start=start, title="On Zoom", settings={"meeting_platform": "zoom"})
        _local_event(  # a venue naming Teams is where a meeting is, not a request for one
            vendor,
            start=start,
            title="Venue only",
            settings={},
            venue_details={"online_meeting": {"provider": "teams"}},
        )
        first = vendor.sync(streams=["meetings"])
        assert (first.status, first.records_processed, first.records_failed) == ("success", 1, 0)
        assert [e["subject"] for e in vendor.sim.store.events.values()] == ["Published"]
        assert vendor.sync(streams=["meetings"]).records_processed == 0

        with app_db.tenant(vendor.org_id) as session:  # unpublished: its meeting waits
            session.get(Event, published).status = "draft"
        assert vendor.sync(streams=["meetings"]).records_processed == 1
        assert len(vendor.sim.store.events) == 1 and _calls(vendor, "PATCH") == 0
        assert vendor.sync(streams=["meetings"]).records_processed == 0


def test_attendance_fills_check_in_and_out_and_fails_unknown_emails_with_a_reason(
    app_db: Database,
) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        ada = create_user(app_db, vendor.org_id, "ada@contoso.test", first_name="Ada")
        event_id = _local_event(vendor, start=datetime.now(UTC) - timedelta(hours=3))
        vendor.sync(streams=["meetings"])
        graph_id = _event(vendor, event_id).venue_details["online_meeting"]["event_id"]
        meeting = vendor.sim.meeting_for_event(graph_id)
        vendor.sim.end_session(
            meeting.id,
            [
                _record("Ada@Contoso.test", ("09:01:12", "09:20:00"), ("09:25:00", "09:54:17")),
                _record("stranger@elsewhere.test", ("09:05:00", "09:10:00")),
            ],
        )
        run = vendor.sync(streams=["attendance"])
        assert (run.status, run.records_processed, run.records_failed) == ("partial", 1, 1)
        [failure] = run.error_details["failures"]
        assert "no user with email stranger@elsewhere.test" in failure["reason"]
        with app_db.tenant(vendor.org_id) as session:
            [attendee] = session.scalars(select(EventAttendee)).all()
            assert (attendee.event_id, attendee.user_id, attendee.status) == (
                event_id,
                ada.id,
                "attended",
            )
            assert attendee.check_in_time == datetime(2026, 1, 5, 9, 1, 12, tzinfo=UTC)
            assert attendee.check_out_time == datetime(2026, 1, 5, 9, 54, 17, tzinfo=UTC)
            assert session.get(Event, event_id).metadata_["teams"]["meeting_id"] == meeting.id
            linked = session.scalar(
                select(ExternalId.local_id).where(ExternalId.entity_type == "online_meetings")
            )
            assert linked == event_id
        again = vendor.sync(streams=["attendance"])
        assert (again.records_processed, again.records_failed) == (1, 1)
        with app_db.tenant(vendor.org_id) as session:
            assert len(session.scalars(select(EventAttendee)).all()) == 1


def test_attendance_fills_an_existing_registration_instead_of_adding_one(
    app_db: Database,
) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        ada = create_user(app_db, vendor.org_id, "ada@contoso.test")
        event_id = _local_event(vendor, start=datetime.now(UTC) - timedelta(hours=3))
        with app_db.tenant(vendor.org_id) as session:
            session.add(EventAttendee(event_id=event_id, user_id=ada.id, status="registered"))
        vendor.sync(streams=["meetings"])
        graph_id = _event(vendor, event_id).venue_details["online_meeting"]["event_id"]
        meeting = vendor.sim.meeting_for_event(graph_id)
        vendor.sim.end_session(meeting.id, [_record("ada@contoso.test", ("09:00:00", "10:00:00"))])
        run = vendor.sync(streams=["attendance"])
        assert (run.status, run.records_processed) == ("success", 1)
        with app_db.tenant(vendor.org_id) as session:
            [attendee] = session.scalars(select(EventAttendee)).all()
            assert attendee.status == "attended" and attendee.check_in_time is not None


def test_the_app_token_is_fetched_once_and_reused_until_it_nears_expiry(
    app_db: Database,
) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        vendor.sim.add_events(ORGANIZER, 120)
        assert vendor.sync(streams=["events"]).records_processed == 120
        assert vendor.sync(streams=["events"], full_refresh=True).status == "success"
        assert vendor.sim.tokens_issued == 1  # 6 pages, 2 runs, worker processes: one token


def test_a_token_about_to_expire_is_replaced_before_it_is_used(app_db: Database) -> None:
    sim = GraphSimulator(token_ttl=120)  # inside the 5-minute margin: never good enough
    with teams(app_db, sim=sim, organizer=ORGANIZER) as vendor:
        vendor.sim.add_events(ORGANIZER, 10)
        assert vendor.sync(streams=["events"]).status == "success"
        assert vendor.sync(streams=["events"], full_refresh=True).status == "success"
        assert vendor.sim.tokens_issued >= 2


def test_a_next_link_to_another_host_is_refused(app_db: Database) -> None:
    with teams(app_db, organizer=ORGANIZER) as vendor:
        vendor.sim.add_events(ORGANIZER, 80)
        vendor.sim.next_link_base = "https://graph.microsoft.com.evil.example"
        run = vendor.sync(streams=["events"], full_refresh=True)
        assert run.status == "partial"  # the stream failed after its first page
        assert "not one of the vendor's hosts" in run.error_details["failed_streams"]["events"]
        assert run.records_processed == 50  # the first page, before the link


def _record(email: str, *intervals: tuple[str, str]) -> dict[str, Any]:
    return {
        "emailAddress": email,
        "totalAttendanceInSeconds": 3185,
        "role": "Attendee",
        "identity": {"id": str(uuid.uuid4()), "displayName": email.split("@")[0]},
        "attendanceIntervals": [
            {"joinDateTime": f"2026-01-05T{a}Z", "leaveDateTime": f"2026-01-05T{b}Z"}
            for a, b in intervals
        ],
    }
