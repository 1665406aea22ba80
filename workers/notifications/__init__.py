"""Notification fan-out across channels (in_app, email, sms, push and plug-ins).

    from workers.notifications import Audience, Content, notify
    with db.tenant(org_id) as session:
        notify(session, Audience(role="admins"), Content("Sync failed", "...", channels=("in_app", "email")))

See docs/notifications.md.
"""

from workers.notifications import producers  # noqa: F401 - hooks expense decisions
from workers.notifications.fanout import Content, FanoutResult, notify, notify_later, send
from workers.notifications.recipients import Audience

__all__ = ["Audience", "Content", "FanoutResult", "notify", "notify_later", "send"]
