"""Every `plugs` command the README shows exists, with every option it uses.

The guide's workflows themselves run in the tests of each part (CLI, webhooks, demo,
operations); this keeps the README from naming a command or option that is not there."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from tests.conftest import ROOT
from workers.cli import cli

README = (ROOT / "README.md").read_text()
#: Commands whose arguments go to Celery unchanged.
PASS_THROUGH = {"worker", "beat"}


def _command_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#") or " plugs " not in f" {line} ":
                continue
            lines.append(line[line.index("plugs") :] if "plugs " in line else line)
    return lines


def _resolve(tokens: list[str]) -> tuple[click.Command, list[str], list[str]]:
    command: click.Command = cli
    path: list[str] = []
    rest = list(tokens)
    while isinstance(command, click.Group) and rest:
        if rest[0] not in command.commands:
            if "run" not in command.commands:  # `plugs sync ID` is `plugs sync run ID`
                break
            rest.insert(0, "run")
        path.append(rest.pop(0))
        command = command.commands[path[-1]]
    return command, path, rest


COMMANDS = _command_lines()


def test_the_guide_shows_commands() -> None:
    assert len(COMMANDS) >= 25


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_and_option_in_the_readme_exists(line: str) -> None:
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace(" | ", " "))
    words = [word.split("|", 1)[0] for word in words]  # `pause|resume`: check the first
    assert words[0] == "plugs", line
    command, path, rest = _resolve(words[1:])
    assert path, f"{line}: no such plugs command"
    if path[0] in PASS_THROUGH:
        return
    if isinstance(command, click.Group) and command.invoke_without_command is False:
        pytest.fail(f"{line}: `plugs {' '.join(path)}` needs a subcommand")
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    used = {word.split("=", 1)[0] for word in rest if word.startswith("-")}
    assert used <= known, f"{line}: unknown options {sorted(used - known)}"
