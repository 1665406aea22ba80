"""Real `plugs beat` processes tick the scheduler through a real worker (Redis, PostgreSQL)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from models import SyncSchedule
from models.base import utcnow
from models.session import Database
from simulators.server import RunningServer
from tests import services
from tests.scheduler.conftest import (
    Slot,
    scheduled_integrations,
    scheduled_runs,
    slots_of,
)

EVERY = timedelta(seconds=5)


def _anchors(db: Database, org_id: uuid.UUID) -> dict[uuid.UUID, datetime]:
    """Each integration's first due time (before any beat ran)."""
    with db.tenant(org_id) as session:
        rows = session.execute(select(SyncSchedule.integration_id, SyncSchedule.next_run_at))
        return dict(rows.all())


def _wait_until_idle(db: Database, org_id: uuid.UUID, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(run.status != "running" for run in scheduled_runs(db, org_id)):
            return
        time.sleep(0.5)
    raise AssertionError("scheduled runs still running")


def _grid(anchor: datetime, until: datetime, step: timedelta) -> list[datetime]:
    points, point = [], anchor
    while point <= until:
        points.append(point)
        point += step
    return points


def _covered(slots: list[Slot], step: timedelta) -> set[datetime]:
    """Due times accounted for: each slot row, and the missed ones folded into it."""
    return {s.slot - k * step for s in slots for k in range(s.missed + 1)}


def test_two_beats_start_every_integration_slot_exactly_once(
    app_db: Database,
    acme_server: RunningServer,
    platform_env: dict[str, str],
    sync_worker,
    tmp_path: Path,
) -> None:
    org_id, ids = scheduled_integrations(app_db, acme_server, 50, "every 5s")
    anchors = _anchors(app_db, org_id)
    beats = [services.start_beat(platform_env, tmp_path / f"beat{n}") for n in (1, 2)]
    try:
        time.sleep(60)
    finally:
        for beat in beats:
            beat.stop()
    stopped = utcnow()
    _wait_until_idle(app_db, org_id)
    for beat in beats:
        assert "Sending due task dispatch-due-syncs" in beat.output(), beat.output()[-2000:]

    slots, runs = slots_of(app_db, org_id), scheduled_runs(app_db, org_id)
    # One run per (integration, slot), and it is the run its slot row names.
    per_slot = Counter((r.integration_id, r.request_data["slot"]) for r in runs)
    assert per_slot and max(per_slot.values()) == 1, per_slot.most_common(3)
    started = {
        (s.integration_id, s.slot.isoformat()): s.run_id for s in slots if s.status == "started"
    }
    assert set(started) == set(per_slot)
    assert {r.id for r in runs} == set(started.values())
    # Every due time of the window was started, skipped (recorded), or folded into the next.
    window_end = stopped - timedelta(seconds=3)
    for integration_id in ids:
        own = [s for s in slots if s.integration_id == integration_id]
        expected = set(_grid(anchors[integration_id], window_end, EVERY))
        assert {s.slot for s in own} <= set(_grid(anchors[integration_id], stopped, EVERY))
        assert expected <= _covered(own, EVERY), (
            integration_id,
            sorted(expected - _covered(own, EVERY)),
        )
    skipped = [s for s in slots if s.status == "skipped"]
    assert all(s.reason == "a run of this integration is still running" for s in skipped)
    assert len(started) >= 0.8 * len(slots), Counter(s.status for s in slots)
    assert len(started) >= 50 * 8, sync_worker.output()[-3000:]


def test_after_downtime_each_schedule_runs_once_not_once_per_missed_slot(
    app_db: Database,
    acme_server: RunningServer,
    platform_env: dict[str, str],
    sync_worker,
    tmp_path: Path,
) -> None:
    step = timedelta(seconds=3)
    org_id, ids = scheduled_integrations(app_db, acme_server, 10, "every 3s")
    beat = services.start_beat(platform_env, tmp_path / "beat")
    try:
        time.sleep(9)
    finally:
        beat.stop()
    down_from = utcnow() + timedelta(seconds=3)  # ticks still queued may run a little longer
    time.sleep(18)  # six intervals without beat
    back_at = utcnow()
    beat = services.start_beat(platform_env, tmp_path / "beat")
    try:
        time.sleep(6)
    finally:
        beat.stop()
    _wait_until_idle(app_db, org_id)

    slots, runs = slots_of(app_db, org_id), scheduled_runs(app_db, org_id)
    for integration_id in ids:
        after = [s for s in slots if s.integration_id == integration_id and s.slot > down_from]
        catch_up = after[0]
        assert catch_up.slot >= back_at - step, (catch_up, back_at)
        assert catch_up.missed >= 3, catch_up  # the slots beat missed are folded into one
        assert catch_up.status == "started"
        ran = [r for r in runs if r.integration_id == integration_id]
        in_downtime = [
            r
            for r in ran
            if down_from < datetime.fromisoformat(r.request_data["slot"]) <= catch_up.slot
        ]
        assert [r.id for r in in_downtime] == [catch_up.run_id]


def test_schedule_edits_and_pauses_take_effect_at_the_next_tick_without_restarts(
    app_db: Database,
    acme_server: RunningServer,
    platform_env: dict[str, str],
    sync_worker,
    plugs,
    tmp_path: Path,
) -> None:
    org_id, (edited, paused) = scheduled_integrations(app_db, acme_server, 2, "every 1h")
    beat = services.start_beat(platform_env, tmp_path / "beat")

    def runs_of(integration_id: uuid.UUID) -> list:
        return [r for r in scheduled_runs(app_db, org_id) if r.integration_id == integration_id]

    def wait_for_run(integration_id: uuid.UUID, after: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(runs_of(integration_id)) <= after:
            assert time.monotonic() < deadline, beat.output()[-2000:]
            time.sleep(0.5)

    try:
        for integration_id in (edited, paused):
            result = plugs(
                "schedules", "set", str(integration_id), "--every", "3s", env=platform_env
            )
            assert result.returncode == 0, result.stderr
            assert "every 3s" in result.stdout
        wait_for_run(edited, 0)
        wait_for_run(paused, 0)

        assert plugs("schedules", "pause", str(paused), env=platform_env).returncode == 0
        assert (
            plugs("schedules", "set", str(edited), "--every", "1h", env=platform_env).returncode
            == 0
        )
        time.sleep(2)  # a tick already running may still start one
        counts = (len(runs_of(edited)), len(runs_of(paused)))
        time.sleep(8)  # more than two intervals of the old schedule
        assert (len(runs_of(edited)), len(runs_of(paused))) == counts

        assert plugs("schedules", "resume", str(paused), env=platform_env).returncode == 0
        wait_for_run(paused, counts[1])
        listed = plugs("schedules", "list", "--org", str(org_id), env=platform_env).stdout
        lines = {line.split()[0]: line for line in listed.splitlines()}
        assert lines[str(paused)].startswith(f"{paused}  acme       every 3s")
        assert lines[str(edited)].startswith(f"{edited}  acme       every 1h")
        # the last slot's state is its run's status (the slot row itself says "started")
        finished_or_going = ("running", "success", "partial", "failed", "skipped")
        assert all(line.endswith(finished_or_going) for line in lines.values()), listed
    finally:
        beat.stop()
    _wait_until_idle(app_db, org_id)
