"""SQLAlchemy 2 models of every table of docs/erd.md plus the platform's own tables.

Import models from here; importing this package registers every table on ``Base.metadata``.
"""

from models.audit import AnalyticsEvent, AuditLog
from models.base import Base
from models.contacts import Contact, ContactInteraction
from models.events import Event, EventAgendaItem, EventAttendee
from models.expenses import Expense
from models.integrations import Integration, IntegrationLog
from models.media import Media, MediaCollection, MediaCollectionItem
from models.notification_delivery import (
    NotificationDelivery,
    NotificationPreference,
    NotificationProfile,
    NotificationRequest,
    PushDevice,
)
from models.notifications import Notification
from models.organizations import Organization, User
from models.schedules import ScheduleSlot, SyncSchedule
from models.sync_state import (
    ExternalId,
    OutboxMessage,
    SyncCursor,
    SyncPageOutcome,
    SyncStreamRun,
)
from models.webhooks import WebhookDelivery, WebhookSubscription

__all__ = [
    "AnalyticsEvent",
    "AuditLog",
    "Base",
    "Contact",
    "ContactInteraction",
    "Event",
    "EventAgendaItem",
    "EventAttendee",
    "Expense",
    "ExternalId",
    "Integration",
    "IntegrationLog",
    "Media",
    "MediaCollection",
    "MediaCollectionItem",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "NotificationProfile",
    "NotificationRequest",
    "Organization",
    "OutboxMessage",
    "PushDevice",
    "ScheduleSlot",
    "SyncCursor",
    "SyncPageOutcome",
    "SyncSchedule",
    "SyncStreamRun",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
