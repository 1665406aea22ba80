"""Notification fan-out across channels (in_app, email, sms, push and plug-ins).

    from notifications import Audience, Content, notify
    with db.tenant(org_id) as session:
        notify(session, Audience(role="admins"), Content("Sync failed", "...", channels=("in_app", "email")))

See docs/notifications.md.
"""

from notifications.fanout import Content, FanoutResult, notify, notify_later, send
from notifications.recipients import Audience

__all__ = ["Audience", "Content", "FanoutResult", "notify", "notify_later", "send"]
