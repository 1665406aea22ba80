"""Message bodies from templates (:class:`string.Template`, ``$name`` placeholders).

Templates live in ``notifications/templates``: ``email.txt``, ``email.html``,
``sms.txt``, ``push.txt``.  A type-specific file wins over the generic one
(``email.reminder.html`` for reminders).  In HTML every value is escaped; a template that
names an unknown placeholder is a bug and raises.
"""

from __future__ import annotations

import html
from functools import lru_cache
from importlib.resources import files
from string import Template

from notifications.channels.base import Message

#: An SMS longer than this is cut (10 concatenated segments of 153 GSM characters).
SMS_MAX = 1530


@lru_cache(maxsize=32)
def _template(name: str) -> Template | None:
    resource = files("notifications") / "templates" / name
    return Template(resource.read_text(encoding="utf-8")) if resource.is_file() else None


def _pick(kind: str, suffix: str, notification_type: str) -> Template:
    template = _template(f"{kind}.{notification_type}.{suffix}") or _template(f"{kind}.{suffix}")
    if template is None:
        raise LookupError(f"no template {kind}.{suffix}")
    return template


def values(message: Message) -> dict[str, str]:
    """The placeholders every template may use."""
    return {
        "name": message.recipient.name,
        "title": message.title,
        "message": message.message,
        "type": message.notification_type,
        "organization_line": "The Plugs",
    }


def render(kind: str, suffix: str, message: Message) -> str:
    """The ``kind.suffix`` template (e.g. ``email``, ``html``) filled in for ``message``."""
    fields = values(message)
    if suffix == "html":
        fields = {key: html.escape(value) for key, value in fields.items()}
    return _pick(kind, suffix, message.notification_type).substitute(fields).strip() + "\n"


def sms_body(message: Message) -> str:
    body = render("sms", "txt", message).strip()
    return body if len(body) <= SMS_MAX else body[: SMS_MAX - 1] + "…"
