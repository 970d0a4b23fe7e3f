"""Packaging: the command line installs as ``embedkit.cli`` (never a top-level ``cli`` package)
and the ``embedkit`` console script runs from any folder."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE


def installed_files() -> list[str]:
    """Paths the installed distribution put in site-packages; skips for an editable install
    (which points at this checkout instead of copying files)."""
    dist = importlib.metadata.distribution("embedkit")
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        pytest.skip("editable install: the wheel's layout is not what is installed")
    return [str(f) for f in dist.files or []]


def test_the_wheel_installs_the_cli_under_the_embedkit_namespace() -> None:
    files = installed_files()
    assert "embedkit/cli/entry.py" in files and "embedkit/cli/render/loss.py" in files
    assert not [f for f in files if f.split("/")[0] == "cli"], "a top-level 'cli' package was installed"


def test_the_console_script_points_at_the_namespaced_entry() -> None:
    scripts = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "embedkit"]
    assert [e.value for e in scripts] == ["embedkit.cli.entry:main"]


def test_in_a_checkout_embedkit_cli_is_the_repository_cli_folder() -> None:
    import embedkit.cli.main

    import embedkit.cli

    assert [Path(p).resolve() for p in embedkit.cli.__path__] == [(ROOT / "cli").resolve()]
    assert Path(embedkit.cli.main.__file__).resolve() == (ROOT / "cli" / "main.py").resolve()


def test_the_console_script_runs_outside_the_repository(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("embedkit")
    if not script.exists():
        pytest.skip("no embedkit console script beside this interpreter")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(script), "check", str(SAMPLE / "emb.npy"), "-r", "rows==4000", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True
