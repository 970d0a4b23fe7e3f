"""Stdout that cannot encode Unicode: human output in ASCII, --json valid, never a traceback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from embedkit.cli.streams import ASCII, degrade_to_ascii

from tests.cli_streams import run_app
from tests.conftest import ROOT, SEED

FACES = str(SEED / "faces.npy")
PAIRS = str(SEED / "pairs.csv")

COMMANDS = {
    "loss": ["loss", "--pairs", PAIRS, FACES],
    "loss-triplet": ["loss", "--kind", "triplet", FACES],
    "eval": ["eval", FACES],
    "check": ["check", FACES, "-r", "rows>=1", "-r", "contrastive_loss<=10"],
    "inspect": ["inspect", FACES],
    "mine": ["mine", FACES, "-s", "hard"],
    "env": ["env"],
}


def run(args: list[str], encoding: str) -> subprocess.CompletedProcess[bytes]:
    """In-process, stdout and stderr in ``encoding``."""
    out, err = io.BytesIO(), io.BytesIO()
    code = run_app(args, out, err, encoding)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def run_script(args: list[str], encoding: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "embedkit.cli.entry", *args], capture_output=True, env=env, timeout=120)


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_in_a_narrow_encoding(name: str, as_json: bool, encoding: str) -> None:
    done = run([*COMMANDS[name], *(["--json"] if as_json else [])], encoding)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    text = done.stdout.decode(encoding)  # everything written is in the stream's encoding
    if as_json:
        assert done.stdout.isascii()
        assert isinstance(json.loads(text), dict)
    else:
        assert text.strip() and "\\u" not in text


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_help_and_errors_in_a_narrow_encoding(encoding: str) -> None:
    for args in (["--help"], ["loss", "--help"], ["mine", "--help"]):
        done = run(args, encoding)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
        assert "Usage" in done.stdout.decode(encoding)
    bad = run(["loss", "--kind", "tr\u00efplet", FACES], encoding)
    assert bad.returncode == 2 and bad.stderr.decode(encoding).startswith("error: "), bad.stderr


def test_the_console_script_with_pythonioencoding_ascii() -> None:
    done = run_script(["loss", "--kind", "triplet", FACES], "ascii")
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    assert b"||a-p||^2" in done.stdout.replace(b" ", b"")
    done = run_script(["inspect", FACES, "--json"], "cp1252")
    assert done.returncode == 0 and json.loads(done.stdout)["rows"] == 4


def test_the_ascii_spelling_of_the_formulas(capfd: pytest.CaptureFixture[str]) -> None:
    import io

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    old = sys.stdout
    sys.stdout = stream
    try:
        degrade_to_ascii()
        print("max(‖a−p‖² − ‖a−n‖² + α, 0) · τ ≤ 0.5 café ✓ │", end="")
        stream.flush()
    finally:
        sys.stdout = old
    assert raw.getvalue().decode("ascii") == "max(||a-p||^2 - ||a-n||^2 + alpha, 0) * tau <= 0.5 cafe ok |"
    assert all(value.isascii() for value in ASCII.values())


def test_every_registered_command_is_covered_here() -> None:
    import typer.main
    from embedkit.cli.main import app

    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    covered = {args[0] for args in COMMANDS.values() if args and not args[0].startswith("-")}
    assert registered <= covered, f"add {sorted(registered - covered)} to this file's commands"
