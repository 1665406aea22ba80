"""`plugs integrations pause|resume|remove` as the receiver and the worker see them: a paused
integration's deliveries are acknowledged and stored but wait (the sweeper leaves them too)
until it resumes; a removed one's get 404."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from models import Contact, Integration, WebhookDelivery
from models.session import Database
from runs import inbox
from tests.webhooks.conftest import Hooked
from workers.http import webhooks


def _deliveries(db: Database, hooked: Hooked) -> list[WebhookDelivery]:
    with db.tenant(hooked.vendor.org_id) as session:
        rows = list(session.scalars(select(WebhookDelivery)))
        session.expunge_all()
        return rows


def test_a_paused_integration_keeps_its_deliveries_until_it_resumes(
    hooked: Hooked, app_db: Database, plugs: Any, platform_env: dict[str, str]
) -> None:
    integration = str(hooked.vendor.integration_id)
    [contact_id] = hooked.sim.add_contacts(1)
    paused = plugs("integrations", "pause", integration, env=platform_env)
    assert paused.returncode == 0, paused.stderr
    assert "webhook deliveries wait" in paused.stdout
    webhooks.forget_cached()  # the receiver's 5-second cache of the integration

    assert hooked.post([hooked.sim.contact_event("creation", contact_id)]).status_code == 200
    time.sleep(3)  # a worker would have applied it by now
    [waiting] = _deliveries(app_db, hooked)
    assert (waiting.status, waiting.attempts) == ("received", 0)
    inbox.sweep(app_db, after=timedelta(0))  # the sweeper leaves it alone
    assert inbox.process(app_db, hooked.vendor.org_id, waiting.id).state == "paused"
    [still] = _deliveries(app_db, hooked)
    assert (still.status, still.attempts, still.updated_at) == (
        "received",
        0,
        waiting.updated_at,
    )
    assert hooked.vendor.count(Contact) == 0
    started = plugs("sync", integration, env=platform_env)
    assert started.returncode == 1 and "is paused" in started.stderr

    resumed = plugs("integrations", "resume", integration, env=platform_env)
    assert resumed.stdout.strip() == f"resumed {integration}: 1 waiting webhook deliveries enqueued"
    [done] = hooked.wait_processed()
    assert done.status == "processed" and done.attempts == 1
    assert hooked.vendor.count(Contact) == 1


def test_a_removed_integration_gets_404_and_its_waiting_deliveries_give_up(
    hooked: Hooked, app_db: Database, plugs: Any, platform_env: dict[str, str]
) -> None:
    integration = str(hooked.vendor.integration_id)
    [contact_id] = hooked.sim.add_contacts(1)
    assert plugs("integrations", "pause", integration, env=platform_env).returncode == 0
    webhooks.forget_cached()
    assert hooked.post([hooked.sim.contact_event("creation", contact_id)]).status_code == 200

    removed = plugs("integrations", "remove", integration, env=platform_env)
    assert removed.returncode == 0, removed.stderr
    webhooks.forget_cached()
    after = hooked.post([hooked.sim.contact_event("propertyChange", contact_id)])
    assert after.status_code == 404
    [waiting] = _deliveries(app_db, hooked)  # the one stored while paused, not the refused one
    assert inbox.process(app_db, hooked.vendor.org_id, waiting.id).state == "failed"
    [failed] = _deliveries(app_db, hooked)
    assert failed.status == "failed" and failed.last_error == "the integration was deleted"


def test_a_removal_is_refused_within_the_cache_time_while_deliveries_keep_coming(
    hooked: Hooked, app_db: Database
) -> None:
    """The receiver's lookup is refreshed ahead of its expiry while requests keep coming
    (no forget_cached() here): still, nothing is accepted longer than CACHE_SECONDS after
    the integration is removed."""
    [contact_id] = hooked.sim.add_contacts(1)
    event = hooked.sim.contact_event("propertyChange", contact_id)
    assert hooked.post([event]).status_code == 200  # looked up and cached now
    with app_db.tenant(hooked.vendor.org_id) as session:
        session.get_one(Integration, hooked.vendor.integration_id).soft_delete()
    removed = time.monotonic()
    answers: list[tuple[float, int]] = []
    while time.monotonic() - removed < webhooks.CACHE_SECONDS + 1.5:
        status = hooked.post([event]).status_code
        answers.append((time.monotonic() - removed, status))
        time.sleep(0.1)
    refused = [at for at, status in answers if status == 404]
    assert refused and refused[0] <= webhooks.CACHE_SECONDS + 0.5, answers
    assert all(status == 404 for at, status in answers if at >= refused[0]), answers
