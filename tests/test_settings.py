"""Settings: the embedded default needs no servers, secrets never print, and the Celery
configuration keeps the delivery promises (acks late, prefetch 1, JSON, limits)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings
from tests.conftest import ROOT

CANARY = "canary-s3cr3t-7f1e"


@pytest.fixture(autouse=True)
def no_plugs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read settings from what they pass, not from this process's PLUGS_*."""
    import os

    for key in [k for k in os.environ if k.startswith("PLUGS_")]:
        monkeypatch.delenv(key)


def test_with_nothing_set_everything_is_local_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.sqlalchemy_url() == f"sqlite:///{tmp_path / 'plugs.sqlite3'}"
    assert settings.celery_broker_url().startswith("filesystem://")
    assert settings.celery_result_backend() == f"db+sqlite:///{tmp_path / 'results.sqlite3'}"
    assert settings.is_embedded


def test_secrets_never_appear_in_the_settings_repr_or_errors() -> None:
    settings = Settings(
        database_url=f"postgresql+psycopg://app:{CANARY}@db/plugs",
        broker_url=f"redis://:{CANARY}@redis:6379/0",
        secret_keys=CANARY,
        flower_basic_auth=f"admin:{CANARY}",
    )
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())
    with pytest.raises(ValidationError) as error:
        Settings(database_url=f"postgresql://app:{CANARY}@db/plugs", task_time_limit=5000)
    assert CANARY not in str(error.value)


def test_a_time_limit_near_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least twice"):
        Settings(task_time_limit=2000, visibility_timeout=3600)
    with pytest.raises(ValidationError, match="below"):
        Settings(task_time_limit=100, task_soft_time_limit=100)


def _celery_conf(**env: str) -> dict[str, object]:
    code = (
        "import json, celeryconfig as c; print(json.dumps({k: getattr(c, k) for k in dir(c) "
        "if k.islower() and not k.startswith('_') and isinstance(getattr(c, k), "
        "(str, int, float, bool, list, dict, type(None)))}, default=str))"
    )
    environment = {"PATH": "/usr/bin:/bin", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=environment
    )
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout)


def test_celery_is_configured_for_at_least_once_delivery(tmp_path: Path) -> None:
    conf = _celery_conf(PLUGS_DATA_DIR=str(tmp_path), PLUGS_BROKER_URL="redis://127.0.0.1:6379/0")
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["result_extended"] is False
    timeout = conf["broker_transport_options"]["visibility_timeout"]  # type: ignore[index]
    assert 2 * conf["task_time_limit"] <= timeout  # type: ignore[operator]


def test_rabbitmq_publishes_with_confirms(tmp_path: Path) -> None:
    conf = _celery_conf(
        PLUGS_DATA_DIR=str(tmp_path), PLUGS_BROKER_URL="amqp://guest:guest@127.0.0.1//"
    )
    assert conf["broker_transport_options"]["confirm_publish"] is True  # type: ignore[index]
