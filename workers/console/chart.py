"""The picture of an integration's last 24 hours, drawn on the server as SVG: per hour a
bar of records synced with the failed ones stacked on it (red), and below, one bar per
run as long as the run took."""

from __future__ import annotations

from dataclasses import dataclass

from runs.activity import Activity

WIDTH, BAR_AREA, RUN_AREA, LEFT, GAP = 720, 150, 60, 48, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str
    kind: str  # synced | failed | run-<status>


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, str]]
    top: int
    longest: float
    record_axis_y: int
    run_axis_y: int
    left: int


def draw(activity: Activity) -> Chart:
    hours = activity.hours
    slot = (WIDTH - LEFT) / max(1, len(hours))
    top = max([h.synced + h.failed for h in hours] + [1])
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for n, hour in enumerate(hours):
        x = LEFT + n * slot + GAP / 2
        synced = BAR_AREA * hour.synced / top
        failed = BAR_AREA * hour.failed / top
        when = f"{hour.start:%H}:00 UTC"
        if hour.synced:
            bars.append(
                Bar(
                    x,
                    BAR_AREA - synced,
                    slot - GAP,
                    synced,
                    f"{when}: {hour.synced} synced",
                    "synced",
                )
            )
        if hour.failed:
            bars.append(
                Bar(
                    x,
                    BAR_AREA - synced - failed,
                    slot - GAP,
                    failed,
                    f"{when}: {hour.failed} failed",
                    "failed",
                )
            )
        if n % 3 == 0:
            labels.append((x, f"{hour.start:%H}h"))
    longest = max([r.seconds for r in activity.runs] + [1.0])
    start = hours[0].start if hours else None
    run_top = BAR_AREA + 24
    for run in activity.runs:
        if start is None:
            break
        offset = (run.started_at - start).total_seconds() / 3600
        x = LEFT + offset * slot
        height = max(2.0, (RUN_AREA - 4) * run.seconds / longest)
        bars.append(
            Bar(
                x,
                run_top + RUN_AREA - height,
                max(3.0, slot / 4),
                height,
                f"run {run.run_id} {run.status}: {run.seconds:.1f} s",
                f"run-{run.status}",
            )
        )
    return Chart(
        WIDTH,
        run_top + RUN_AREA + 18,
        bars,
        labels,
        top,
        longest,
        BAR_AREA,
        run_top + RUN_AREA,
        LEFT,
    )
