"""The hook :mod:`connectors.testing.plugin` adds to pytest."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_plugs_settings_changed() -> None:
    """``PLUGS_*`` environment variables of this process changed (``platform_env`` came
    into force, or was undone) and the cached settings and database were forgotten: drop
    whatever else this test process built from the old ones (a Celery app's broker
    connections, say).  Implement it in a ``conftest.py``."""
