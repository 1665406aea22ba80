"""docker-compose.yml only runs commands that exist: each one is asked for its --help."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("image") == "the-plugs:latest"}
_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}")


def _entrypoint() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    assert match, "the Dockerfile names its entrypoint"
    return yaml.safe_load(match.group(1))


def _commands(service: dict) -> list[list[str]]:
    """Each command line a service runs, with compose variables filled with placeholders."""
    entrypoint = service.get("entrypoint", _entrypoint())
    argv = [
        _VARIABLE.sub("placeholder", part) for part in [*entrypoint, *service.get("command", [])]
    ]
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def _healthchecks() -> list[list[str]]:
    found = []
    for service in OURS.values():
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"] and test[1] in ("plugs", "celery"):
            found.append([_VARIABLE.sub("placeholder", t).replace("$$", "$") for t in test[1:]])
    return found


def _run_help(argv: list[str]) -> subprocess.CompletedProcess[str]:
    program, *args = argv
    assert program in ("plugs", "celery"), f"{argv}: only plugs and celery commands run here"
    prefix = (
        [sys.executable, "-m", "workers.cli"]
        if program == "plugs"
        else [sys.executable, "-m", "celery"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    return subprocess.run(
        [*prefix, *args, "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_compose_has_the_whole_stack() -> None:
    expected = {"postgres", "redis", "migrate", "worker", "beat", "webhooks", "flower", "rabbitmq"}
    assert expected <= set(SERVICES)
    for name in ("postgres", "redis", "worker", "webhooks", "flower"):
        assert "healthcheck" in SERVICES[name], name


def test_flower_requires_basic_auth_kept_off_its_command_line() -> None:
    flower = SERVICES["flower"]
    assert flower["environment"]["PLUGS_FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert not any("FLOWER_BASIC_AUTH" in part for part in flower["command"])


@pytest.mark.parametrize(
    "argv",
    [argv for service in OURS.values() for argv in _commands(service)] + _healthchecks(),
    ids=lambda argv: " ".join(argv[:3]),
)
def test_every_command_in_compose_exists(argv: list[str]) -> None:
    result = _run_help(argv)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_the_image_installs_every_package(tmp_path: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("models", "connectors", "workers", "scheduler", "celeryconfig.py"):
        assert re.search(rf"^COPY .*\b{re.escape(package)}\b", dockerfile, re.M), package
