"""Structured logs: one format for the worker, beat, the HTTP app and the CLI.

:func:`configure` installs one handler on the root logger: JSON lines (python-json-logger)
for containers and log shippers, or plain text for a person at a terminal
(``PLUGS_LOG_FORMAT=json|text|auto``; auto is text only when stderr is a terminal).  The
worker and beat call it from Celery's ``setup_logging`` signal (:mod:`workers.app`), so
Celery's own records take the same path; the HTTP app calls it before uvicorn starts
(``uvicorn.run(..., log_config=None)``).

Every record carries the context of the work it belongs to (``run_id``, ``task_id``,
``task_name``, ``integration_id``, ``organization_id``) from context variables: a task's
are bound from its request and id arguments (:func:`enter_task`), library code adds more
with :func:`bound`.

Secrets are removed by ONE filter, :class:`RedactingFilter`, on every handler, with the one
scrubber (:class:`core.redaction.Redactor`): the values of the settings' secrets (and the
passwords and keys inside them) and any value bound with :func:`core.redaction.add_secrets`
for the current task, in any case or encoding, then secret shapes (passwords in URLs,
``Bearer``/``Basic`` credentials, the values of secret-named keys, 32-byte base64 keys).  It
applies to the message, its arguments, the traceback and extra fields alike.
"""

from __future__ import annotations

import inspect
import logging
import logging.handlers
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, Final, TextIO

from pythonjsonlogger.json import JsonFormatter

from core.redaction import Redactor, reset_task_secrets, restore_task_secrets, task_secrets
from core.settings import get_settings

#: The context every record may carry, in this order.
CONTEXT_FIELDS: Final = ("run_id", "task_id", "task_name", "integration_id", "organization_id")
#: Task arguments bound to the log context when a task starts (ids only, by name).
ID_ARGUMENTS: Final = ("run_id", "integration_id", "organization_id")

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "plugs_log_context", default=MappingProxyType({})
)


# --- context ------------------------------------------------------------------------------


def current_context() -> dict[str, str]:
    """The log context of the running code (a copy)."""
    return dict(_context.get())


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add ``fields`` (``run_id=...``, ``integration_id=...``) to every record logged inside
    the block, on top of the context already bound (e.g. the task's)."""
    token = _context.set(_merged(_context.get(), fields))
    try:
        yield
    finally:
        _context.reset(token)


def _merged(base: Mapping[str, str], fields: Mapping[str, object]) -> dict[str, str]:
    return {**base, **{k: str(v) for k, v in fields.items() if v is not None and v != ""}}


_task_tokens: dict[str, tuple[Token[Mapping[str, str]], Any]] = {}


def enter_task(task_id: str, task: Any, args: Any = (), kwargs: Any = None, **_: Any) -> None:
    """Celery ``task_prerun``: bind the task's id, name and id arguments for its records
    (Celery's own "succeeded"/"raised" lines and ``on_failure`` included)."""
    fields = {"task_id": task_id, "task_name": getattr(task, "name", None)}
    fields.update(_id_arguments(task, args or (), kwargs or {}))
    _task_tokens[task_id] = (_context.set(_merged({}, fields)), reset_task_secrets())


def leave_task(task_id: str, **_: Any) -> None:
    """Celery ``task_postrun``: forget the task's context and secrets."""
    tokens = _task_tokens.pop(task_id, None)
    if tokens is None:
        return
    try:
        _context.reset(tokens[0])
    except ValueError:  # run in another context (e.g. a pool thread): start afresh
        _context.set({})
    restore_task_secrets(tokens[1])


def _id_arguments(task: Any, args: Any, kwargs: Any) -> dict[str, object]:
    try:
        call = inspect.signature(task.run).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {}
    return {name: call.arguments[name] for name in ID_ARGUMENTS if name in call.arguments}


# --- filters and formatters ---------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (fields a record already has win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_STANDARD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_EXCEPTIONS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """The one place secrets are removed from log records: see the module docstring.

    The message is rendered with its arguments and redacted, the traceback is rendered and
    redacted (``exc_info`` is then dropped, so no formatter renders it again unredacted),
    and string or container extra fields are redacted too.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        extra = task_secrets()
        record.msg = self.redactor(_message(record), extra)
        record.args = None
        if record.exc_info:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text, extra)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info, extra)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str | dict | list | tuple):
                setattr(record, key, self.redactor.value(value, extra))
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the record
        return f"{record.msg!s} (could not apply the log arguments)"


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [key=value ...]`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)
        )
        line = super().formatMessage(record)
        return f"{line} [{context}]" if context else line


def json_formatter() -> JsonFormatter:
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, process, the
    context fields and any extra fields, and ``exc_info`` with the traceback."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(process)d",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


# --- installing -----------------------------------------------------------------------------


def resolve_format(setting: str, stream: TextIO) -> str:
    """``json`` or ``text`` for the setting (``auto``: text only on a terminal)."""
    if setting != "auto":
        return setting
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(
    level: int | str | None = None,
    *,
    logfile: str | None = None,
    stream: TextIO | None = None,
    log_format: str | None = None,
) -> logging.Handler:
    """Send every record of this process through one redacting, context-adding handler
    (to ``logfile`` or ``stream``, default stderr), replacing the root logger's handlers.

    Handlers that libraries installed on other loggers get the redacting filter too.
    """
    settings = get_settings()
    target = stream if stream is not None else sys.stderr
    handler: logging.Handler = (
        logging.handlers.WatchedFileHandler(logfile) if logfile else logging.StreamHandler(target)
    )
    chosen = resolve_format(log_format or settings.log_format, target)
    handler.setFormatter(json_formatter() if chosen == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    redacting = RedactingFilter(Redactor.from_settings(settings))
    handler.addFilter(redacting)
    logging.basicConfig(level=_level(level or settings.log_level), handlers=[handler], force=True)
    logging.captureWarnings(True)
    _guard_every_handler(redacting)
    return handler


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING or ERROR)")
    return value


def _guard_every_handler(redacting: RedactingFilter) -> None:
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)


def setup_celery_logging(
    loglevel: int | str | None = None, logfile: str | None = None, **_: Any
) -> None:
    """Celery ``setup_logging``: Celery then leaves logging to us (worker and beat)."""
    configure(loglevel, logfile=logfile or None)
