"""A fake of Acme's API for the connector's tests, on the platform's simulator base: an
``httpx`` handler that keeps people and pages them (``with sim:`` serves it on loopback;
``fail_next`` and ``requests`` come with the base).

* ``GET /people?offset=&count=[&updated_since=]``: ``{"people": [...]}``, oldest change
  first; ``updated_since`` keeps the people changed at or after it.
* ``GET /people/{ref}``: one person, or 404.
* Every call needs ``Authorization: Bearer <token>`` (401 otherwise).

Times come from a clock of its own that ticks one second per change, from a fixed start,
so nothing depends on when the tests run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from simulators.base import Simulator

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


class AcmeSimulator(Simulator):
    """Acme's API with its people in memory (see the module docstring)."""

    name = "Acme"

    def __init__(self, token: str = "acme-token") -> None:
        super().__init__()
        self.token = token
        self.people: dict[str, dict[str, Any]] = {}
        self._ticks = 0

    def add_people(self, count: int) -> list[str]:
        """``count`` new people; their refs."""
        with self._lock:
            refs = []
            for _ in range(count):
                ref = str(len(self.people) + 1)
                self.people[ref] = {
                    "ref": ref,
                    "given": f"Person {ref}",
                    "mail": f"p{ref}@acme.example",
                    "updated": self._tick(),
                }
                refs.append(ref)
            return refs

    def update_person(self, ref: str, **fields: Any) -> None:
        with self._lock:
            self.people[ref].update(fields, updated=self._tick())

    def break_person(self, ref: str, broken: bool = True) -> None:
        """Give the person an address that is not one (or a good one again)."""
        self.update_person(ref, mail="broken@@acme.example" if broken else f"p{ref}@acme.example")

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"error": "who are you"})
        parts = request.url.path.strip("/").split("/")
        if request.method != "GET" or parts[0] != "people" or len(parts) > 2:
            return httpx.Response(404, json={"error": "no such thing"})
        with self._lock:
            if len(parts) == 2:
                person = self.people.get(parts[1])
                return httpx.Response(200 if person else 404, json=person or {})
            params = request.url.params
            offset, count = int(params.get("offset", 0)), int(params.get("count", 20))
            since = params.get("updated_since", "")
            found = sorted(
                (p for p in self.people.values() if p["updated"] >= since),
                key=lambda p: (p["updated"], int(p["ref"])),
            )
            return httpx.Response(200, json={"people": found[offset : offset + count]})

    def _tick(self) -> str:
        self._ticks += 1
        return (EPOCH + timedelta(seconds=self._ticks)).isoformat()
