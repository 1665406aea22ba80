"""The README's two commands are the ones CI and the demo test run."""

from __future__ import annotations

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    block = README.split("```sh", 1)[1].split("```", 1)[0]
    return [
        line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_the_readme_starts_with_two_commands() -> None:
    demo, suite = _commands()
    assert demo.endswith("plugs demo")
    assert "pytest" in suite


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
