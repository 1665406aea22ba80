"""Parameter types shared by the `plugs` commands."""

from __future__ import annotations

import uuid

import click


class UUIDParam(click.ParamType):
    """An id (UUID), refused in one line when it is not one."""

    name = "uuid"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> uuid.UUID:
        try:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an id (a UUID)", param, ctx)


UUID = UUIDParam()


class KeyValue(click.ParamType):
    """``key=value``, as a (key, value) pair."""

    name = "key=value"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not key=value", param, ctx)
        return key.strip(), val


KEY_VALUE = KeyValue()
