"""The plug-in contract: what a connector declares, and nothing it has to loop over itself.

A connector is one declarative class::

    class HubSpot(Connector):
        provider = "hubspot"
        integration_type = "crm"
        credential_fields = (CredentialField("private_app_token"), ...)
        default_base_url = "https://api.hubapi.com"
        allowed_hosts = ("api.hubapi.com",)
        streams = (Stream(name="contacts", entity=Contact, paginator=..., mapper=map_contact), ...)

Paging, retries, rate limits, credentials, idempotent upserts, cursors and run accounting
belong to the framework (:mod:`connectors.http`, :mod:`runs.sync`, ...).  Mapping
functions are pure: vendor record in, :class:`MappedRecord` out, or
:class:`~core.errors.SkippableRecordError` for a record that cannot be used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

from core.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from connectors.http import VendorClient
    from connectors.ratelimit import Concurrency, Limit
    from models.base import Base
    from models.integrations import Integration
    from models.session import Database, PlugsSession

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class CredentialField:
    """One credential a connector needs; ``secret`` ones are encrypted and never shown."""

    name: str
    secret: bool = True
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Page:
    """One page of a stream.

    ``key`` names the page uniquely within its run (it is the cursor it was fetched with),
    ``next_cursor`` is where the next page starts, or None when the stream is finished.
    """

    records: list[JSONDict]
    next_cursor: JSONDict | None
    key: str


class Paginator(Protocol):
    """How a stream walks the vendor's pages: cursor, offset, next-link, search window."""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        """Fetch the page that starts at ``cursor`` (None: the first page) for ``state``
        (the stream's incremental watermark; empty for a full refresh)."""
        ...


@dataclass(frozen=True)
class MappedRecord:
    """A vendor record as one of our rows.

    ``values`` are column values of the stream's entity (attribute names), ``references``
    name rows this one points at by the vendor's ids: ``{"contact_id": ("contacts", "151")}``
    becomes the local id through the external-id map.  ``deleted`` soft-deletes the row.
    """

    external_id: str
    values: JSONDict
    references: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    deleted: bool = False
    cursor_value: str | None = None


@dataclass(frozen=True)
class Stream:
    """A collection the connector pulls from the vendor into one of our tables.

    Args:
        name: the stream's name (``contacts``), unique within the connector.
        entity: the model the records become (``Contact``).
        path: the vendor's path of the collection.
        paginator: how to walk it.
        mapper: pure function from a vendor record to a :class:`MappedRecord`.
        primary_key: the vendor record's id field.
        cursor_field: the field incremental syncs filter on (None: full refresh only).
        page_size: records per page.
        fetch_by_ids: optional, fetch given records again (used by replay).
        after: streams that must finish first when they run in the same run.
    """

    name: str
    entity: type[Base]
    path: str
    paginator: Paginator
    mapper: Callable[[JSONDict], MappedRecord]
    primary_key: str = "id"
    cursor_field: str | None = None
    page_size: int = 100
    fetch_by_ids: Callable[[VendorClient, Stream, Sequence[str]], list[JSONDict]] | None = None
    #: Streams of the same run that must finish first (their rows are referenced).
    after: tuple[str, ...] = ()

    @property
    def entity_type(self) -> str:
        return str(self.entity.__tablename__)


@dataclass(frozen=True)
class PushResult:
    """What the vendor did with one row we pushed: its record (to map back), or why not.

    ``settled`` says the vendor now holds what the row says and there is nothing to read
    back: a DELETE answered 2xx or 404 (already gone), a row that needs nothing there as it
    is.  The framework then stores the hash of the row *as pushed* on its external-id link
    (the existing one, or a new one for ``external_id``), so the row is neither pushed nor
    counted again until it changes here.  Without a settled result, a row the read-back does
    not find (the vendor deleted it) stays "changed here" and is pushed on every run.
    """

    local_id: Any
    external_id: str | None = None
    record: JSONDict | None = None
    error: str | None = None
    settled: bool = False
    #: Filled by the framework (:func:`connectors.export.push`), not by connectors: the hash
    #: of the row as it was pushed, stored for a settled result.
    pushed_hash: str | None = None


@dataclass(frozen=True)
class ExportStream:
    """Rows of ours the connector writes back to the vendor, in batches of ``batch_size``.

    ``push`` sends one batch and returns one :class:`PushResult` per row (a 207 partial
    failure is a per-row ``error``); ``pull_stream`` names the stream whose mapper reads
    the vendor's answer, so what we pushed does not come back as a change (echo suppression).
    """

    name: str
    entity: type[Base]
    pull_stream: str
    #: Called as ``push(client, rows)``.  A push that needs this integration's settings (a
    #: path, a host) takes them as keyword-only parameters, bound by the connector's
    #: :meth:`Connector.export_stream` with :func:`functools.partial`.
    push: Callable[..., list[PushResult]]
    #: The columns the pull stream's mapper writes: a row whose values differ from the
    #: ones last synced has changed here and is pushed.
    columns: tuple[str, ...]
    batch_size: int = 100
    #: Only rows matching this SQL condition on ``entity`` are looked at (e.g. the events
    #: that ask for this vendor); the others are neither pushed nor counted.  None: all.
    where: ColumnElement[bool] | None = field(default=None, compare=False)
    #: Also push soft-deleted rows that were synced before (they have an external-id link)
    #: and were deleted since, so ``push`` can delete them at the vendor (``is_deleted`` is
    #: set on the row; answer with a ``settled`` result).  Deleted rows never linked are
    #: never pushed.  False: soft-deleted rows are invisible to the write-back.
    include_deleted: bool = False


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook delivery exactly as received: verify signatures on these raw bytes."""

    method: str
    url: str  # the full URL as requested (scheme, host, path, query)
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    received_at: float  # epoch seconds


@dataclass(frozen=True)
class WebhookEvent:
    """One event of a delivery: ``event_id`` is the vendor's id for it (deduplication key)."""

    event_id: str
    kind: str
    object_id: str | None
    occurred_at: float | None
    payload: JSONDict


@dataclass(frozen=True)
class SyncRequest:
    """What an event may ask for instead of writing itself: a run of these streams (of the
    event's integration, triggered by the webhook), limited to ``record_ids`` per stream
    where given.  The inbox opens it in the delivery's transaction."""

    streams: tuple[str, ...]
    record_ids: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class WebhookReply:
    """The receiver's answer to a vendor's handshake (a validation GET or challenge)."""

    status: int = 200
    body: bytes = b""
    media_type: str = "text/plain"


class Connector:
    """Base class of every connector; subclasses only declare.

    Subclasses set the class attributes below and may override :meth:`auth` when the
    vendor's authentication is not a bearer token.  Third parties register theirs under
    the ``plugs.connectors`` entry-point group (see :mod:`connectors.registry`).
    """

    provider: ClassVar[str]
    integration_type: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    default_base_url: ClassVar[str]
    streams: ClassVar[tuple[Stream, ...]] = ()
    export_streams: ClassVar[tuple[ExportStream, ...]] = ()
    #: Status code -> action overrides for this vendor (see connectors.http.STATUS_ACTIONS).
    status_actions: ClassVar[Mapping[int, Any]] = {}
    #: Webhook deliveries larger than this are refused (413) before they are read whole.
    webhook_max_bytes: ClassVar[int] = 1 << 20
    #: The status a stored delivery is acknowledged with (Graph expects 202).
    webhook_ack_status: ClassVar[int] = 200
    #: Request headers that carry a delivery's credential, signature or timestamp (lower
    #: case): the receiver refuses a request repeating any of them before verifying it, as
    #: the copy we check need not be the copy a proxy or another reader checked.
    webhook_security_headers: ClassVar[tuple[str, ...]] = ("authorization",)
    #: Query parameters that do the same (a secret in the URL), refused when repeated too.
    webhook_security_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, integration: Integration, credentials: Mapping[str, Any]) -> None:
        self.integration = integration
        self.credentials = credentials

    @property
    def base_url(self) -> str:
        return str(self.integration.settings.get("base_url") or self.default_base_url)

    # Two settings a subclass declares as class attributes, or as properties when they
    # depend on the integration (HubSpot's and Zoom's limits, Teams' hosts).

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """Hosts besides ``base_url``'s the client may follow links to."""
        return ()

    @property
    def rate_limit(self) -> Limit | Concurrency | None:
        """The limit the vendor account's requests share; None: no limit of ours."""
        return None

    def account_key(self) -> str:
        """Names the vendor account whose rate limit this integration's calls share.

        Defaults to the integration; connectors whose accounts can be connected by several
        integrations override it (e.g. with the vendor's account id from settings).
        """
        return str(self.integration.settings.get("account_id") or self.integration.id)

    def stream(self, name: str) -> Stream:
        for stream in self.streams:
            if stream.name == name:
                return stream
        known = ", ".join(s.name for s in self.streams) or "none"
        raise ConfigError(f"{self.provider} has no stream {name!r}; its streams: {known}")

    def export_stream(self, name: str) -> ExportStream:
        for stream in self.export_streams:
            if stream.name == name:
                return stream
        raise ConfigError(f"{self.provider} has no export stream {name!r}")

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the delivery's signature (and timestamp) with this integration's secret.

        Raise :class:`~core.errors.AuthError` when it does not verify; the default
        refuses every delivery (a connector without webhooks).
        """
        raise ConfigError(f"{self.provider} does not receive webhooks")

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """The events of a verified delivery; raise ``ValueError`` for a malformed body."""
        raise ConfigError(f"{self.provider} does not receive webhooks")

    def webhook_stored_body(self, request: WebhookRequest) -> bytes:
        """The body as it is kept in the inbox: secrets the vendor puts in the body removed
        (Graph's ``clientState``); :meth:`parse_webhook` must still parse it, as the worker
        parses the stored copy.  Called after the delivery verified and parsed.  The default
        keeps the body as received."""
        return request.body

    def webhook_handshake(self, request: WebhookRequest) -> WebhookReply | None:
        """Answer a request that is a vendor's validation rather than a delivery (Mailchimp's
        GET, Zoom's ``endpoint.url_validation``, Graph's ``validationToken``), or None when
        it is a delivery.  Called before :meth:`verify_webhook`: a handshake that the vendor
        signs is verified here.  Raise ``AuthError``/``ValueError`` to refuse it."""
        return None

    def webhook_delivery_id(self, request: WebhookRequest, events: Sequence[WebhookEvent]) -> str:
        """The key a delivery is stored once under: the vendor's delivery id where it sends
        one, else (the default) a hash of its events' ids, so that a retry of the same events
        with a new attempt number is recognised as the same delivery."""
        keys = "\n".join(sorted(event.event_id for event in events))
        return hashlib.sha256(keys.encode()).hexdigest()

    def apply_webhook_event(self, session: PlugsSession, event: WebhookEvent) -> SyncRequest | None:
        """Apply one verified event in ``session`` (the organization's transaction; the
        framework wraps each event in a savepoint and writes the run's integration_logs row),
        or return a :class:`SyncRequest` for the records it names to be read again.

        It must be idempotent: the same event applied twice changes nothing the second time.
        Raise :class:`~core.errors.SkippableRecordError` (or ``ValueError``) for an
        event that cannot be applied: a per-event failure, with its reason.  Events of kinds
        the connector does not act on are simply returned from (counted as succeeded)."""
        raise ConfigError(f"{self.provider} does not receive webhooks")

    def refresh_credentials(self, current: Mapping[str, Any]) -> dict[str, Any] | None:
        """New credential fields (e.g. ``access_token``, ``expires_at``) obtained from the
        vendor with what ``current`` holds (a refresh token), or None when there is nothing
        to refresh.  The default refreshes nothing.

        Called under the integration's row lock by
        :func:`connectors.credentials.refresh_if_expiring`, which merges and stores the
        result encrypted; housekeeping calls it for idle integrations before they expire.
        """
        return None

    @classmethod
    def refreshes_credentials(cls) -> bool:
        """Whether this connector overrides :meth:`refresh_credentials`."""
        return cls.refresh_credentials is not Connector.refresh_credentials

    def check_connection(self, client: VendorClient) -> str | None:
        """Make ONE cheap authenticated call proving the credentials and settings work
        (`plugs integrations test`, and `add` unless ``--no-verify``); return what it saw
        worth telling (an account, an audience) or None.  Let the client's errors through
        (:class:`~core.errors.AuthError` for refused credentials); raise
        :class:`~core.errors.ConfigError` when the answer shows a wrong setting (404).  The
        default fetches the first page of the first stream; a connector overrides it with
        its vendor's cheapest authenticated endpoint."""
        if not self.streams:
            raise ConfigError(f"{self.provider} has no stream to check the connection with")
        stream = self.stream(self.streams[0].name)
        stream.paginator.fetch(client, stream, None, {})
        return None

    def delete_webhook_subscriptions(self, db: Database) -> tuple[int, list[str]]:
        """Delete what this integration subscribed to at the vendor, as it is being removed:
        how many were deleted, and one line per one that could not be (it then expires at
        the vendor).  The default has nothing to delete (subscriptions made by hand in the
        vendor's console stay the operator's)."""
        return 0, []

    def after_configured(self, db: Database) -> list[str]:
        """Called once the integration was added or its settings or credentials changed
        (``connectors.integrations``), with its new configuration: set up at the vendor
        what it needs before its first webhook (a subscription).  Returns one line per
        problem, for the operator; the default has nothing to set up."""
        return []

    def auth(self) -> httpx.Auth | None:
        """The request authentication; the default sends the ``token`` credential as Bearer."""
        token = _unwrap(self.credentials.get("token"))
        if not token:
            raise ConfigError(f"{self.provider} integration has no token")
        return BearerAuth(token)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``, the token kept out of reprs."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(**********)"


def _unwrap(value: Any) -> str | None:
    """A credential value, unwrapped from its redacting wrapper at the point of use."""
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


unwrap_secret = _unwrap
