"""The queues and which tasks go to which: separate queues, so a flood of one kind of work
(a webhook storm, a 10,000-recipient notification) cannot starve the others.

``plugs worker -Q syncs`` runs a worker for one kind only; with no ``-Q`` a worker serves
all of :data:`QUEUES`.
"""

from __future__ import annotations

QUEUES = ("default", "maintenance", "syncs", "webhooks", "notifications")
#: Task-name prefix -> queue (``celeryconfig.task_routes``).
ROUTES = {
    "maintenance.*": "maintenance",
    "sync.*": "syncs",
    "webhooks.*": "webhooks",
    "notifications.*": "notifications",
    "events.*": "notifications",  # events to the host product: outgoing messages too
    "scheduler.*": "default",
}
