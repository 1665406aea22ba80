"""Helpers of the operations tests: reading JSON log lines, settings changed for one test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests import services

#: Celery writes these from its signal handlers with os.write, not through logging.
CELERY_SIGNAL_HANDLER_LINES = ("worker: Warm shutdown (MainProcess)",)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object; fails on a line that is not one."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip() in CELERY_SIGNAL_HANDLER_LINES:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict), line
        records.append(record)
    return records


@contextmanager
def settings_env(**env: str) -> Iterator[None]:
    """PLUGS_* variables changed for the block (settings, database and Celery reloaded)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    services.reload_settings()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        services.reload_settings()
