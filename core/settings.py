"""The one typed settings object, read from the environment with the prefix ``PLUGS_``.

With nothing set, everything runs on one machine without servers (the embedded default):
a SQLite file database, kombu's filesystem transport as the broker and a SQLite result
backend, all under ``PLUGS_DATA_DIR`` (``./var`` by default).

Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` in reprs, logs and
exceptions, and are unwrapped only at the point of use.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from core.errors import PlugsError


class SmtpServer(BaseModel):
    """An SMTP relay for the email channel (the first that answers is used)."""

    name: str = "smtp"
    host: str
    port: int = 587
    #: Upgrade the connection with STARTTLS (refused if the server cannot); ``ssl`` is
    #: implicit TLS (port 465).  Neither only for a local relay.
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "The Plugs <notifications@localhost>"
    timeout: float = 15.0


class SmsProvider(BaseModel):
    """A Twilio-style SMS API (``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``)."""

    name: str = "twilio"
    base_url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: SecretStr
    from_number: str


class PushProvider(BaseModel):
    """An FCM HTTP v1 style push API (``POST {base_url}/v1/projects/{project}/messages:send``)."""

    name: str = "fcm"
    base_url: str = "https://fcm.googleapis.com"
    project_id: str
    #: An OAuth 2.0 access token of the project's service account.
    access_token: SecretStr


#: Which kind of process opens database connections: the HTTP app answers within a short
#: budget; workers, beat and commands get the longer limits of page loads; ``None`` (the
#: schema owner's migrations, administration) sets no limit on statements.
DatabaseProfile = Literal["worker", "http"]


@dataclass(frozen=True)
class DatabaseLimits:
    """How long a process waits on PostgreSQL, in seconds (0: no limit)."""

    connect: int
    tcp: int
    statement: float
    lock: float
    idle_in_transaction: float

    @property
    def answer(self) -> float:
        """How long the client waits for any one answer: the server's own limit plus a
        second for its error to arrive (0: no limit).  A silent path, which no server-side
        limit can end, ends here."""
        return self.statement + 1.0 if self.statement else 0.0


class Settings(BaseSettings):
    """Everything the platform reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PLUGS_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), description="Where the embedded default keeps its files."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the application role, e.g. postgresql+psycopg://plugs_app@host/db."
        " Default: sqlite file under data_dir.",
    )
    migration_database_url: SecretStr | None = Field(
        default=None,
        description="URL of the schema owner used by `plugs db upgrade`; defaults to database_url.",
    )
    system_database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the system role (`plugs db create-system-role`), for the "
        "work that spans organizations and for the key that binds tenant transactions. "
        "Required on PostgreSQL; unused on SQLite.",
    )
    broker_url: SecretStr | None = Field(
        default=None,
        description="Celery broker (redis://, amqp://). Default: kombu filesystem transport.",
    )
    result_backend: SecretStr | None = Field(
        default=None, description="Celery result backend. Default: SQLite file under data_dir."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis for shared rate limits and pub/sub (optional)."
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated credential encryption keys, newest first (key_id:base64key).",
    )
    flower_basic_auth: SecretStr | None = Field(
        default=None, description="user:password for Flower's basic auth."
    )

    visibility_timeout: int = Field(default=3600, ge=60)
    task_time_limit: int = Field(default=900, ge=10)
    task_soft_time_limit: int = Field(default=840, ge=5)
    max_redeliveries: int = Field(default=3, ge=1)
    unreachable_after: float = Field(
        default=30.0,
        ge=1,
        description="Seconds a sync page may keep failing with transient errors (no "
        "connection, timeouts, 5xx) before its run fails with that error as the cause.",
    )
    max_inline_wait: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="Longest vendor rate-limit wait (s, in all) slept inside a running task; "
        "a longer one parks the page (outbox, available_at) so other organizations keep "
        "the worker's slot.",
    )
    page_lease: int = Field(
        default=30,
        ge=5,
        description="A running sync page renews its stream's lease every third of this (s); "
        "a stream whose lease lapsed (its worker died) is enqueued again by the sweeper.",
    )
    stalled_after: int = Field(
        default=0,
        ge=0,
        description="Seconds after which a sync stream's page that never started is enqueued "
        "again (a lost message); 0 means the task time limit plus one minute.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Where vendors reach this installation's HTTP app from the internet "
        "(https://plugs.example.com): the webhook URLs given to vendors (a Teams integration's "
        "Graph notificationUrl) are derived from it when an integration sets none.",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Let outgoing calls (vendor APIs and token endpoints, SMS and push "
        "providers, SMTP relays) reach loopback, private and link-local addresses over http "
        "or https (local simulators only); off, every call is https to a public address.",
    )
    integration_log_retention_days: int = Field(default=90, ge=1)
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=200,
        description="Connections each process keeps open to PostgreSQL (10 more on bursts).",
    )
    # --- how long a process waits on PostgreSQL (every connection; see database_limits) ---
    database_connect_timeout: int = Field(
        default=5,
        ge=2,
        le=120,
        description="Seconds to open a PostgreSQL connection before giving up (libpq "
        "connect_timeout); the HTTP app uses its own, shorter budget.",
    )
    database_tcp_timeout: int = Field(
        default=30,
        ge=6,
        le=3600,
        description="Seconds after which a PostgreSQL connection whose peer stopped "
        "answering is declared dead by the kernel (TCP keepalives and tcp_user_timeout).",
    )
    database_statement_timeout: float = Field(
        default=300.0,
        ge=0,
        description="Workers, beat and commands: the server cancels a statement running "
        "longer (0: no limit of ours); the client stops waiting for an answer a second later.",
    )
    database_lock_timeout: float = Field(
        default=30.0,
        ge=0,
        description="Workers, beat and commands: a statement waiting this long for a row lock "
        "fails instead of queueing behind it (0: no limit of ours).",
    )
    database_idle_transaction_timeout: float = Field(
        default=30.0,
        ge=0,
        description="Workers, beat and commands: the server ends a session whose transaction "
        "sat idle this long, releasing its locks (an orphaned transaction; 0: no limit of ours).",
    )
    http_database_timeout: float = Field(
        default=2.0,
        ge=0.5,
        le=30.0,
        description="The HTTP app's budget for one database round trip: its statement, lock "
        "and idle-transaction timeouts and its connect timeout (at least 2 s), so that "
        "it answers 503 within a few seconds when the database is silent.",
    )
    # --- how long a process waits on the broker and the Redis result backend --------------
    broker_connect_timeout: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Seconds to open a connection to the broker or the Redis result backend.",
    )
    broker_socket_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds without an answer after which a Redis connection (broker or "
        "result backend) is declared dead and opened again.",
    )
    broker_heartbeat: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds between health checks of idle broker connections: Redis "
        "health_check_interval and TCP keepalive, AMQP heartbeats (a silent peer is dead "
        "after about twice this).",
    )
    broker_connection_max_retries: int = Field(
        default=100,
        ge=0,
        description="Reconnection attempts (2 s apart, growing to 30 s) after which a worker "
        "whose broker is gone exits with status 1 for its supervisor to restart it "
        "(0: retry forever).",
    )
    webhook_max_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Webhook bodies larger than this are refused with 413 before being read.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Processing attempts of a webhook delivery before it fails."
    )
    webhook_sweep_after: int = Field(
        default=120,
        ge=5,
        description="Seconds after which a stored, unprocessed webhook delivery is enqueued again.",
    )
    webhook_retention_days: int = Field(
        default=30,
        ge=2,
        description="Processed webhook deliveries are kept this long (longer than any vendor's "
        "retry horizon: HubSpot retries for 24 h), so redeliveries are still recognised.",
    )
    scheduler_tick_seconds: float = Field(
        default=5.0,
        ge=0.5,
        le=60.0,
        description="How often beat ticks scheduler.dispatch_due, which starts the due syncs.",
    )
    schedule_grace_seconds: int = Field(
        default=300,
        ge=10,
        description="A schedule whose slot has not started this long after its due time is "
        "reported overdue by the watchdog.",
    )
    token_refresh_margin_seconds: int = Field(
        default=900,
        ge=60,
        description="Idle integrations whose OAuth access token expires within this margin "
        "are refreshed by housekeeping.",
    )
    smtp_servers: list[SmtpServer] = Field(
        default_factory=list,
        description="Email channel: SMTP relays in order of preference, as JSON, e.g. "
        '[{"host": "smtp.example.com", "port": 587, "username": "u", "password": "p"}].',
    )
    sms_providers: list[SmsProvider] = Field(
        default_factory=list,
        description="SMS channel: Twilio-style providers in order of preference (JSON list).",
    )
    push_providers: list[PushProvider] = Field(
        default_factory=list,
        description="Push channel: FCM HTTP v1 style providers in order of preference (JSON).",
    )
    feed_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the per-user tokens of the in-app notification feed.",
    )
    console_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the web console's session cookies (32+ characters; "
        "required outside the embedded default, where each process generates one).",
    )
    notification_max_attempts: int = Field(default=5, ge=1, le=50)
    notification_retry_seconds: float = Field(
        default=30.0,
        ge=0.0,
        description="First wait before a failed notification delivery is tried again; doubles.",
    )
    notification_chunk_size: int = Field(default=500, ge=1, le=5000)
    event_retry_schedule: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Events to the host product: seconds to wait before each retry of a failed "
        "delivery, as a JSON list (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a "
        "day); the delivery fails when the list is used up.",
    )
    event_disable_after_failures: int = Field(
        default=50,
        ge=1,
        description="An event endpoint is disabled after this many deliveries in a row failed "
        "every attempt (the organization's admins are told).",
    )
    event_disable_after_days: float = Field(
        default=5.0,
        gt=0,
        description="An event endpoint is disabled when a delivery fails finally and every "
        "attempt to it has failed for this long.",
    )
    reminder_lead_hours: float = Field(
        default=24.0, gt=0, description="Event reminders go to attendees this long ahead."
    )
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json: one JSON object a line (containers, log shippers); text: for a "
        "person at a terminal; auto: text when stderr is a terminal, JSON otherwise.",
    )
    metrics_integration_labels: bool = Field(
        default=False,
        description="Label the sync-lag gauge by integration id too (one series per "
        "integration: only for installations with few integrations).",
    )
    metrics_window_seconds: int = Field(
        default=3600,
        ge=60,
        description="The sync run, record and duration metrics cover runs started this long ago.",
    )

    @model_validator(mode="after")
    def _limits_fit_the_visibility_timeout(self) -> Settings:
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("PLUGS_TASK_SOFT_TIME_LIMIT must be below PLUGS_TASK_TIME_LIMIT")
        if 2 * self.task_time_limit > self.visibility_timeout:
            raise ValueError(
                "PLUGS_VISIBILITY_TIMEOUT must be at least twice PLUGS_TASK_TIME_LIMIT, "
                "or a running task is delivered to a second worker"
            )
        return self

    def stall_seconds(self) -> int:
        return self.stalled_after or self.task_time_limit + 60

    def database_limits(self, profile: DatabaseProfile | None) -> DatabaseLimits:
        """The waits on PostgreSQL of a process of kind ``profile`` (see DatabaseProfile)."""
        if profile == "http":
            budget = self.http_database_timeout
            connect = min(self.database_connect_timeout, max(2, math.ceil(budget)))
            return DatabaseLimits(connect, self.database_tcp_timeout, budget, budget, budget)
        if profile == "worker":
            return DatabaseLimits(
                self.database_connect_timeout,
                self.database_tcp_timeout,
                self.database_statement_timeout,
                self.database_lock_timeout,
                self.database_idle_transaction_timeout,
            )
        return DatabaseLimits(self.database_connect_timeout, self.database_tcp_timeout, 0, 0, 0)

    # --- resolved values (the embedded default fills what is unset) ---------------------

    def sqlalchemy_url(self) -> str:
        """The application's database URL."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'plugs.sqlite3').resolve()}"

    def system_sqlalchemy_url(self) -> str | None:
        """The system role's database URL (None: not configured)."""
        if self.system_database_url is not None:
            return self.system_database_url.get_secret_value()
        return None

    def owner_sqlalchemy_url(self) -> str:
        """The schema owner's database URL (migrations)."""
        if self.migration_database_url is not None:
            return self.migration_database_url.get_secret_value()
        return self.sqlalchemy_url()

    def celery_broker_url(self) -> str:
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        return "filesystem://localhost//"

    def celery_result_backend(self) -> str:
        if self.result_backend is not None:
            return self.result_backend.get_secret_value()
        return f"db+sqlite:///{(self.data_dir / 'results.sqlite3').resolve()}"

    def broker_folder(self) -> Path:
        """Folder of the filesystem transport (embedded default only)."""
        return (self.data_dir / "broker").resolve()

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None or self.broker_url is None


#: Prefix of every setting's environment variable.
PREFIX = "PLUGS_"
#: Variables of ours that are not settings: the test suite's (``PLUGS_TEST_*``).
NOT_SETTINGS = ("PLUGS_TEST_",)


class InvalidSettings(PlugsError):
    """The environment's ``PLUGS_*`` variables do not make valid settings; the message is
    one line naming each variable at fault (never its value)."""


def variable(field: str) -> str:
    """The environment variable of a settings field: ``database_pool_size`` ->
    ``PLUGS_DATABASE_POOL_SIZE``."""
    return f"{PREFIX}{field.upper()}"


def describe_invalid(error: ValidationError) -> str:
    """One line naming each variable of ``error`` and what is wrong with it."""
    problems = []
    for item in error.errors():
        field, *rest = [*item["loc"]] or ["settings"]
        where = variable(str(field)) if str(field) in Settings.model_fields else str(field)
        where += "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
        problems.append(f"{where}: {item['msg']}")
    return "invalid settings: " + "; ".join(problems)


def _json_hint(field: str) -> str:
    """What a JSON setting looks like, e.g. ``'[{"host": "..."}]'`` for a list of relays."""
    annotation = Settings.model_fields[field].annotation
    item = next(iter(get_args(annotation)), None)
    if isinstance(item, type) and issubclass(item, BaseModel):
        required = [name for name, info in item.model_fields.items() if info.is_required()]
        example = json.dumps([dict.fromkeys(required, "...")])
        return f"a JSON list of objects, e.g. {variable(field)}='{example}'"
    return "JSON"


def describe_unparsed(error: Exception) -> str:
    """One line for pydantic-settings' "error parsing value for field" (a JSON setting that
    is not JSON): the variable and what it should look like."""
    match = re.search(r'field "(\w+)"', str(error))
    if match is None or match.group(1) not in Settings.model_fields:
        return f"invalid settings: {error}"
    field = match.group(1)
    return f"invalid settings: {variable(field)} is not JSON: write it as {_json_hint(field)}"


def misspelled(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``PLUGS_*`` variable that is no setting but looks like one, naming
    the closest (an unknown name far from every setting is left alone: it may be a password
    variable named for ``--password-env``)."""
    known = [variable(name) for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or upper.startswith(NOT_SETTINGS):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if close:
            warnings.append(f"{name} is not a setting and is ignored; did you mean {close[0]}?")
    return warnings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Raises :class:`InvalidSettings` (one line naming the variables) when they are invalid;
    a ``PLUGS_*`` variable that looks like a misspelled setting is logged as a warning."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise InvalidSettings(describe_invalid(error)) from None
    except PydanticSettingsError as error:
        raise InvalidSettings(describe_unparsed(error)) from None
    for warning in misspelled(os.environ):
        logging.getLogger(__name__).warning("%s", warning)
    return settings
