"""Every shell example of README.md runs as typed, in README order, in a copy of sample_data/.

See tests/readme_commands.py for which lines run. A single `embedkit` command runs
in-process (fast); a line with shell syntax (pipes, quotes that the shell removes are fine
either way) runs under `bash -o pipefail` with `embedkit` on PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE
from tests.readme_commands import Example, readme_examples

EXAMPLES = readme_examples()
SHELL_SYNTAX = set("|<>;&$`()")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of sample_data/ that is also reachable as ./sample_data (README paths use both),
    and a bin/ folder whose `embedkit` runs this checkout."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    shutil.copytree(SAMPLE, work)
    (work / "sample_data").symlink_to(work, target_is_directory=True)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "embedkit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m embedkit.cli.entry "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    for name in ("python3", "python"):
        (bin_dir / name).symlink_to(sys.executable)
    return work


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 20, [str(e) for e in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_readme_example_runs(example: Example, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                             capfd: pytest.CaptureFixture[str]) -> None:
    words = shlex.split(example.command, comments=True)
    if words[0] == "embedkit" and not any(c in SHELL_SYNTAX for c in example.command.split("#")[0]):
        from embedkit.cli.main import run

        monkeypatch.chdir(workdir)
        code = run(words[1:])
        out, err = capfd.readouterr()
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "PATH": f"{workdir.parent / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(["bash", "-o", "pipefail", "-c", example.command], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)
        code, _out, err = done.returncode, done.stdout, done.stderr
    assert code == example.exit_code, f"{example}\nexit {code}, expected {example.exit_code}\n{err[-2000:]}"
    assert "Traceback" not in err, f"{example}\n{err[-2000:]}"
