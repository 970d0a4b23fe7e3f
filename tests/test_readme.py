"""The README's quick start is what CI runs: the two commands must stand in both, verbatim."""

from __future__ import annotations

from tests.conftest import ROOT


def quick_start_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line for line in lines if line.startswith("python3 -m venv")]


def test_ci_runs_the_readme_quick_start_verbatim() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    readme = (ROOT / "README.md").read_text()
    for command in commands:
        assert command in readme, command
    assert "pytest" in commands[1] and "sample_data/" in commands[0]
