"""The one base task every Plugs task extends.

Tasks are thin: they take ids (never secrets or payloads: Flower and ``celery inspect``
show arguments), load what they need in a scoped unit of work, call library code and
return a small JSON-able summary.  This class holds what they share:

* delivery: acknowledged late, requeued if the worker process dies (see celeryconfig);
* classification of failures by the exception tree: a :class:`RetryableError` is retried
  with its ``retry_after`` (capped well below the visibility timeout; a longer wait is the
  caller's to park in the database), a :class:`PlugsError` is final and logged as one
  readable line, anything else is a bug and is logged with its traceback;
* a database that went away, stopped answering, timed out a statement or broke a deadlock
  (SQLAlchemy's ``OperationalError``) is retried soon (1, 2, 4... seconds): every task is
  idempotent, and waiting for the sweepers (a lapsed lease, an unpublished outbox row)
  would add their period to the recovery;
* log context (task name and id) on every record the task writes.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from core.errors import PlugsError, RetryableError
from core.settings import get_settings

log = logging.getLogger(__name__)

#: Seconds before the first retry of a task the database failed; doubles each time.
DATABASE_RETRY_BASE = 1.0


class PlugsTask(Task):
    """Base class of every task: see the module docstring."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = 5
    #: Seconds of the first retry; doubles each time (with the exponential backoff below).
    retry_backoff_base = 5

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except RetryableError as exc:
            raise self.retry(exc=exc, countdown=self.retry_countdown(exc.retry_after)) from exc
        except OperationalError as exc:
            countdown = DATABASE_RETRY_BASE * 2 ** (self.request.retries or 0)
            log.warning(
                "task %s: the database failed (%s); retrying in %.0f s",
                self.name,
                type(exc.orig or exc).__name__,
                countdown,
            )
            raise self.retry(exc=exc, countdown=countdown) from exc

    def retry_countdown(self, retry_after: float | None) -> float:
        """Seconds until the next try: the vendor's wish or exponential backoff, capped."""
        backoff = self.retry_backoff_base * 2 ** (self.request.retries or 0)
        wanted = backoff if retry_after is None else retry_after
        cap = get_settings().visibility_timeout / 4
        return max(0.0, min(wanted, cap))

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if isinstance(exc, PlugsError):
            log.error("task %s[%s] failed: %s", self.name, task_id, exc)
        else:
            log.error("task %s[%s] crashed", self.name, task_id, exc_info=exc)
