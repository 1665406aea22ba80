"""The Celery application, configured from :mod:`celeryconfig`.

``plugs worker`` (or ``celery -A workers.app worker``) runs it.
"""

from __future__ import annotations

from celery import Celery

from workers.settings import get_settings

TASK_MODULES = ("workers.tasks.maintenance",)


def _prepare_embedded_default() -> None:
    """The filesystem broker and SQLite files need their folders before the first message."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.broker_url is None:
        (settings.broker_folder() / "control").mkdir(parents=True, exist_ok=True)


_prepare_embedded_default()
app = Celery("plugs", include=TASK_MODULES)
app.config_from_object("celeryconfig")
