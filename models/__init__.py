"""SQLAlchemy 2 models of every table of docs/erd.md plus the platform's own tables.

Import models from here; importing this package registers every table on ``Base.metadata``.
"""

from models.api_keys import ApiKey, IdempotentResponse
from models.audit import AnalyticsEvent, AuditLog
from models.base import Base
from models.contacts import Contact, ContactInteraction
from models.events import Event, EventAgendaItem, EventAttendee
from models.expenses import Expense
from models.host_events import EventAttempt, EventDelivery, EventEndpoint, HostEvent
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
from models.staging import StagedPage
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
    "ApiKey",
    "AuditLog",
    "Base",
    "Contact",
    "ContactInteraction",
    "Event",
    "EventAgendaItem",
    "EventAttempt",
    "EventAttendee",
    "EventDelivery",
    "EventEndpoint",
    "Expense",
    "IdempotentResponse",
    "ExternalId",
    "HostEvent",
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
    "StagedPage",
    "SyncCursor",
    "SyncPageOutcome",
    "SyncSchedule",
    "SyncStreamRun",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
