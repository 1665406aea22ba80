"""The one typed settings object, read from the environment with the prefix ``PLUGS_``.

With nothing set, everything runs on one machine without servers (the embedded default):
a SQLite file database, kombu's filesystem transport as the broker and a SQLite result
backend, all under ``PLUGS_DATA_DIR`` (``./var`` by default).

Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` in reprs, logs and
exceptions, and are unwrapped only at the point of use.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    stalled_after: int = Field(
        default=0,
        ge=0,
        description="Seconds without progress after which a sync stream's page is enqueued "
        "again (a lost message); 0 means the task time limit plus one minute.",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Let connectors call loopback/private addresses (local vendor simulators only).",
    )
    integration_log_retention_days: int = Field(default=90, ge=1)
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
    log_level: str = "INFO"

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

    # --- resolved values (the embedded default fills what is unset) ---------------------

    def sqlalchemy_url(self) -> str:
        """The application's database URL."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'plugs.sqlite3').resolve()}"

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
