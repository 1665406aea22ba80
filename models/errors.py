"""The root of the one exception tree, and the data layer's errors.

::

    PlugsError                       anything we raise on purpose
    ├── TenancyError                 a query or write without, or outside, its organization
    ├── NotFoundError                a row named by id does not exist (in this organization)
    └── ConnectorError               (connectors.errors) vendor calls: retry, fail or skip
"""

from __future__ import annotations


class PlugsError(Exception):
    """Anything The Plugs raises on purpose; its message is safe to show an operator."""


class TenancyError(PlugsError):
    """Work on tenant data without an organization context, or across organizations."""


class NotFoundError(PlugsError):
    """A row named by id does not exist, or belongs to another organization."""
