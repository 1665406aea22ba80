"""Channels are found through the ``plugs.channels`` entry-point group (ours are
registered there in pyproject.toml, exactly as a third party registers theirs).  Only the
channel asked for is imported."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from core.errors import ConfigError
from core.settings import Settings, get_settings
from notifications.channels.base import Channel

GROUP = "plugs.channels"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed() -> list[str]:
    """The names of every installed channel, sorted."""
    return sorted(_entry_points())


def channel_class(name: str) -> type[Channel]:
    """The channel class registered as ``name``; an unknown name lists the installed ones."""
    entry_point = _entry_points().get(name)
    if entry_point is None:
        raise ConfigError(
            f"no channel named {name!r} is installed; installed: {', '.join(installed())}"
        )
    channel = entry_point.load()
    if not (isinstance(channel, type) and issubclass(channel, Channel)):
        raise ConfigError(f"entry point {name!r} ({entry_point.value}) is not a Channel")
    if channel.name != name:
        raise ConfigError(f"entry point {name!r} loads the channel {channel.name!r}")
    return channel


def open_channel(name: str, settings: Settings | None = None) -> Channel:
    """A ready instance of channel ``name`` (use it as a context manager)."""
    return channel_class(name)(settings or get_settings())


def refresh() -> None:
    """Forget the cached entry points (after installing a channel at run time)."""
    _entry_points.cache_clear()
