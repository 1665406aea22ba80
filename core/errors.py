"""The one exception tree, sorted by what the caller does with each kind.

::

    PlugsError                        anything we raise on purpose; safe to show an operator
    ├── TenancyError                  a query or write without, or outside, its organization
    ├── NotFoundError                 a row named by id does not exist (in this organization)
    ├── PlatformConfigError           OUR configuration is wrong (credential keys): the run
    │                                 fails saying so; the integration's status is untouched
    └── ConnectorError                a vendor call or record went wrong
        ├── RetryableError            try again later: 429, 5xx, timeouts (``retry_after`` s)
        │   └── RateLimitedError      the vendor's or our shared limit is exhausted
        ├── FatalError                retrying will not help; the run fails with this reason
        │   ├── AuthError             credentials rejected: the integration goes to ``error``
        │   └── ConfigError           the integration's settings are wrong or missing
        └── SkippableRecordError      one record is bad: counted and reasoned, the run goes on

Messages are shown to operators and stored in integration_logs: they never carry secrets.
"""

from __future__ import annotations


class PlugsError(Exception):
    """Anything The Plugs raises on purpose; its message is safe to show an operator."""


class TenancyError(PlugsError):
    """Work on tenant data without an organization context, or across organizations."""


class NotFoundError(PlugsError):
    """A row named by id does not exist, or belongs to another organization."""


#: How a run's reason starts when our configuration, not the vendor or the integration, failed
#: it (:class:`PlatformConfigError`); the run's end leaves the integration's status alone.
OUR_CONFIGURATION = "our configuration: "


class PlatformConfigError(PlugsError):
    """The platform's own configuration is wrong: the credential keys are missing or do not
    open what is stored.  Not the vendor's fault nor the integration's: it never marks an
    integration ``error``; a run it stops fails with an :data:`OUR_CONFIGURATION` reason."""


class ConnectorError(PlugsError):
    """Something went wrong talking to a vendor or handling what it sent."""


class RetryableError(ConnectorError):
    """A failure that may pass if the work runs again after ``retry_after`` seconds.

    ``retry_after`` is the vendor's wish (Retry-After, rate-limit reset) or None for
    "use exponential backoff".
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """A rate limit (the vendor's, or the one we share across workers) is exhausted."""


class FatalError(ConnectorError):
    """Retrying will not help: the run fails and an operator must act."""


class AuthError(FatalError):
    """The vendor rejected the credentials (401/403, revoked token, bad refresh)."""


class ConfigError(FatalError):
    """The integration's settings or credentials are missing or invalid."""


class SkippableRecordError(ConnectorError):
    """One record cannot be mapped or stored; the others go on."""

    def __init__(self, message: str, *, record_id: str | None = None) -> None:
        super().__init__(message)
        self.record_id = record_id
