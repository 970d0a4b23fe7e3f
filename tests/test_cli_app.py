"""The app as a whole: version, help on every command, the import boundary, the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from embedkit.cli.main import app

import embedkit
from tests.conftest import SEED


def command_names() -> list[str]:
    return [c.name or c.callback.__name__ for c in app.registered_commands]


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"embedkit {embedkit.__version__}"


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_with_an_example(run_cli, name: str) -> None:
    result = run_cli(name, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout and "Example" in result.stdout, result.stdout


def test_library_never_imports_the_cli_stack() -> None:
    code = ("import sys, embedkit, embedkit.io, embedkit.losses.compute, embedkit.knn; "
            "bad = [m for m in ('typer', 'rich', 'click', 'cli') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def installed_script() -> str | None:
    found = shutil.which("embedkit")
    if found:
        return found
    candidate = Path(sys.executable).with_name("embedkit")
    return str(candidate) if candidate.exists() else None


@pytest.mark.skipif(installed_script() is None, reason="embedkit is not installed as a console script")
def test_installed_script_runs_outside_the_repository(tmp_path: Path) -> None:
    script = installed_script()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([script, "loss", "--pairs", str(SEED / "pairs.csv"), "--reduction", "sum", "--json",
                           str(SEED / "faces.npy")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert '"loss": 0.0330447' in done.stdout
    usage = subprocess.run([script, "loss", "--kind", "nope", str(SEED / "faces.npy")], capture_output=True,
                           text=True, cwd=tmp_path, env=env)
    assert usage.returncode == 2
    lines = usage.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0], usage.stderr
    assert "Traceback" not in usage.stderr


@pytest.mark.skipif(installed_script() is None, reason="embedkit is not installed as a console script")
def test_pipe_of_embeddings_through_stdin(tmp_path: Path) -> None:
    script = installed_script()
    with open(SEED / "faces.npy", "rb") as handle:
        done = subprocess.run([script, "loss", "--pairs", str(SEED / "pairs.csv"), "--json"], stdin=handle,
                              capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
