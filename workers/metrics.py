"""Prometheus metrics of the platform (prometheus-client).

Counters that the code increments live here; gauges that describe the database and the
broker (backlogs, queue depths, sync lag) are computed at scrape time by a collector.
Labels are bounded: provider, outcome, reason, channel, status, queue; never organization
or integration ids.
"""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_DELIVERIES = Counter(
    "plugs_webhook_deliveries",
    "Webhook requests answered by the receiver, by provider, outcome and reason.",
    ["provider", "outcome", "reason"],
)
