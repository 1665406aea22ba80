"""How to test your connector: the conformance suite, shipped with the platform.

Every connector, ours and anyone else's, passes the same suite against a simulator of
its vendor: paging to the end, an incremental run that resumes from its cursor, a 429 with
Retry-After, a 5xx then success, a second run that changes no row, a record that fails
mapping (counted, with its reason, and replayable), an authentication failure (the run
fails, the integration is marked, no retry loop) and, for a connector that writes back, a
partial failure counted per record.  Each check runs through a real `plugs worker` into
PostgreSQL, the simulator answering over HTTP on loopback.

Installing the platform (``pip install the-plugs pytest``) registers the pytest plugin
:mod:`connectors.testing.plugin` (entry point ``pytest11``): it creates a scratch
PostgreSQL database with the schema and the platform's roles, takes a Redis db, starts a
worker, and removes all of it at the end.  A connector's tests then need one class::

    from connectors.testing import ConformanceConfig, ConnectorConformance
    from models import Contact
    from plugs_acme.simulator import AcmeSimulator


    class TestAcme(ConnectorConformance):
        config = ConformanceConfig(
            provider="acme",  # the name in your `plugs.connectors` entry point
            stream="people",  # the main pull stream; it needs a cursor_field
            entity=Contact,
            simulator=AcmeSimulator,  # makes a fresh one per test
            credentials={"token": "acme-token"},
            bad_credentials={"token": "stolen"},
            seed=lambda vendor, count: vendor.sim.add_people(count),
            change=lambda vendor, ref: vendor.sim.update_person(ref, given="Changed"),
            break_record=lambda vendor, ref, broken: vendor.sim.break_person(ref, broken),
        )

The simulator fakes your vendor at its HTTP boundary.  Write it on the platform's
:class:`simulators.base.Simulator`: its ``handle(request)`` answers as the vendor does
(records kept, pages, its own errors), and the base brings the rest the suite uses:
``with sim:`` serves it on loopback at ``sim.url``, ``fail_next(count, status=...,
retry_after=...)`` injects 429s and errors, ``requests`` logs every answer.  The hooks
(``seed``, ``change``, ``break_record``) are yours: they act on the simulator through
``vendor.sim``.  :class:`ConformanceConfig` documents every field (settings made from the
simulator's URL, a ``prepare`` step, the write-back stream and the rows it pushes).

Run them with the services up: ``pytest`` finds PostgreSQL at
``PLUGS_TEST_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``;
a superuser: it creates a database and roles, one of them BYPASSRLS) and Redis at ``PLUGS_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379``).  The worker imports your connector, so install your package
(``pip install -e .``) or put it on ``PYTHONPATH``.  ``tests/thirdparty_connector`` in the
platform's repository is a complete example.

Your own tests can use the same pieces: the fixtures of :mod:`connectors.testing.plugin`,
:func:`connect` (a simulator served and an organization connected to it), and
:class:`Vendor` (runs started with `plugs sync` and waited for).
"""

import pytest

pytest.register_assert_rewrite("connectors.testing.conformance")

from connectors.testing.conformance import ConformanceConfig, ConnectorConformance  # noqa: E402
from connectors.testing.vendor import Vendor, connect, wait_for_run  # noqa: E402

__all__ = ["ConformanceConfig", "ConnectorConformance", "Vendor", "connect", "wait_for_run"]
