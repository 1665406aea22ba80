"""Housekeeping beside the tick: the overdue-schedule watchdog and idle OAuth refreshes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from connectors.credentials import decrypt_credentials
from connectors.integrations import add_integration
from models import Integration, SyncSchedule
from models.accounts import create_organization
from models.base import utcnow
from models.session import Database
from runs.token_refresh import refresh_idle
from scheduler import watchdog
from scheduler.dispatch import dispatch_due
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import RunningServer, serve
from tests.scheduler.conftest import scheduled_integrations

GRACE = timedelta(minutes=5)


def _metadata(db: Database, org_id, integration_id) -> dict:  # type: ignore[no-untyped-def]
    with db.tenant(org_id) as session:
        return dict(session.get(Integration, integration_id).metadata_)


def test_an_overdue_schedule_is_reported_once_and_cleared_when_it_runs_again(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, (late, paused) = scheduled_integrations(app_db, acme_server, 2, "every 15m")
    before = watchdog.overdue(app_db, grace=GRACE)
    with app_db.tenant(org_id) as session:
        session.execute(update(SyncSchedule).values(next_run_at=utcnow() - timedelta(minutes=9)))
        session.get(Integration, paused).is_active = False
    assert watchdog.overdue(app_db, grace=GRACE) >= before + 1  # ours (not the paused one)

    first, second = watchdog.check(app_db, grace=GRACE), watchdog.check(app_db, grace=GRACE)
    assert late in first.reported and late not in second.reported  # once per incident
    assert paused not in first.reported
    assert watchdog.MARK in _metadata(app_db, org_id, late)

    dispatch_due(app_db)  # beat is back: the slot starts and the schedule moves on
    assert watchdog.overdue(app_db, grace=GRACE) <= before
    assert late in watchdog.check(app_db, grace=GRACE).recovered
    assert watchdog.MARK not in _metadata(app_db, org_id, late)


def _oauth(db: Database, base_url: str, org_id, expires_in: timedelta, refresh: str):  # type: ignore[no-untyped-def]
    credentials = {
        "access_token": "old-token",
        "refresh_token": refresh,
        "expires_at": (utcnow() + expires_in).isoformat(),
        "client_id": "sim-client-id",
        "client_secret": "sim-client-secret",
    }
    return add_integration(db, org_id, "hubspot", credentials, {"base_url": base_url}).id


def test_idle_oauth_tokens_close_to_expiry_are_refreshed_once(app_db: Database) -> None:
    sim = HubSpotSimulator(private_app_token=None)
    with serve(sim) as server:
        org = create_organization(app_db, "OAuth customer")
        soon = _oauth(app_db, server.base_url, org.id, timedelta(minutes=2), "sim-refresh-token")
        later = _oauth(app_db, server.base_url, org.id, timedelta(hours=3), "sim-refresh-token")
        revoked = _oauth(app_db, server.base_url, org.id, timedelta(minutes=1), "revoked")
        margin = timedelta(minutes=15)
        first = refresh_idle(app_db, margin=margin)
        second = refresh_idle(app_db, margin=margin)
    assert sim.token_refreshes == 1  # `soon` only, and only once
    assert first.refreshed >= 1 and second.refreshed == 0
    with app_db.tenant(org.id) as session:
        rows = {i: session.get(Integration, i) for i in (soon, later, revoked)}
        fresh = decrypt_credentials(rows[soon])
        assert fresh["access_token"].get_secret_value() != "old-token"
        assert fresh.expires_at > utcnow() + margin
        assert decrypt_credentials(rows[later])["access_token"].get_secret_value() == "old-token"
        assert rows[revoked].status == "error"
        assert "token refresh refused" in rows[revoked].metadata_["last_error"]
