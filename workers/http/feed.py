"""The in-app notification feed (filled in by the notifications work): ``routes`` are mounted
at ``/feed`` by :mod:`workers.http.app`."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
