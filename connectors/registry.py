"""Connectors are found through the ``plugs.connectors`` entry-point group.

Ours are registered there too (pyproject.toml), so a third party's connector goes through
exactly the same path: ``[project.entry-points."plugs.connectors"] acme = "acme_plugs:Acme"``.
Only the connector asked for is imported.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from connectors.base import Connector
from core.errors import ConfigError

GROUP = "plugs.connectors"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed() -> list[str]:
    """The providers of every installed connector, sorted."""
    return sorted(_entry_points())


def get_connector(provider: str) -> type[Connector]:
    """The connector class of ``provider``; an unknown name lists the installed ones."""
    entry_point = _entry_points().get(provider)
    if entry_point is None:
        raise ConfigError(
            f"no connector named {provider!r} is installed; installed: {', '.join(installed())}"
        )
    connector = entry_point.load()
    if not (isinstance(connector, type) and issubclass(connector, Connector)):
        raise ConfigError(f"entry point {provider!r} ({entry_point.value}) is not a Connector")
    if connector.provider != provider:
        raise ConfigError(f"entry point {provider!r} loads a connector for {connector.provider!r}")
    return connector


def refresh() -> None:
    """Forget the cached entry points (after installing a connector at run time)."""
    _entry_points.cache_clear()
