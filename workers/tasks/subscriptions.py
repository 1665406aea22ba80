"""Change-notification subscriptions (queue ``webhooks``): kept alive before they expire."""

from __future__ import annotations

from dataclasses import asdict

from connectors.teams import subscriptions
from models.session import get_database
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="webhooks.renew_subscriptions")
def renew_subscriptions() -> dict[str, int]:
    """Create missing Graph subscriptions and renew those past half their lifetime."""
    return asdict(subscriptions.renew_expiring(get_database()))
