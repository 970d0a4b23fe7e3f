"""Failing stdout: a closed pipe ends quietly (0 or 141), a full device is one `error:` line
and exit 2, Ctrl-C while Python imports is `error: interrupted` and 130; never exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE, SEED

FACES = str(SEED / "faces.npy")
PAIRS = str(SEED / "pairs.csv")
EMB = str(SAMPLE / "emb.npy")

# One run of each command that writes its result to stdout (small inputs: fast).
COMMANDS = {
    "loss": ["loss", "--pairs", PAIRS, FACES],
    "eval": ["eval", FACES],
    "check": ["check", FACES, "-r", "rows>=1"],
    "inspect": ["inspect", FACES],
    "mine": ["mine", FACES, "-s", "hard"],
    "help": ["--help"],
    "loss-help": ["loss", "--help"],
    "version": ["--version"],
}


def embedkit(args: list[str], **kwargs) -> subprocess.Popen:
    """The console script's entry (cli.entry) in a child process, from outside the repository."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.Popen([sys.executable, "-m", "cli.entry", *args], env=env, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_stdout_closed_before_the_first_write_ends_quietly(name: str) -> None:
    process = embedkit(COMMANDS[name], stdout=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before anything is written: every write is EPIPE
    _, err = process.communicate(timeout=120)
    err_text = err.decode()
    assert process.returncode in (0, 141), (process.returncode, err_text)
    assert "Traceback" not in err_text and "error" not in err_text.lower(), err_text


def test_head_of_a_large_csv_on_stdout_ends_quietly(tmp_path: Path) -> None:
    """`mine -o - | head -1`: more than a pipe buffer of rows, the reader leaves after one line."""
    process = embedkit(["mine", EMB, "-s", "hard", "--negatives", "5", "-o", "-", "-q"], stdout=subprocess.PIPE,
                       cwd=tmp_path)
    first = process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert first.startswith(b'"anchor"'), first
    assert process.returncode in (0, 141), (process.returncode, err.decode())
    assert "Traceback" not in err.decode() and "error" not in err.decode(), err.decode()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def full_device(tmp_path: Path) -> Path:
    """A scratch character device 1,7 (the kernel's "full" device): every write is ENOSPC.
    Never the machine's own /dev/full."""
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    node = tmp_path / "full"
    try:
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, 7))
    except OSError as exc:  # e.g. a container without CAP_MKNOD, or a nodev mount
        pytest.skip(f"cannot make a character device here: {exc}")
    try:
        with open(node, "wb") as handle:
            handle.write(b"x")
            handle.flush()
    except OSError:
        return node
    pytest.skip("the scratch device accepts writes (nodev mount?)")


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_stdout_on_a_full_device_is_one_error_line_and_exit_2(name: str, as_json: bool, full_device: Path) -> None:
    args = COMMANDS[name]
    if as_json:
        if name in ("help", "loss-help", "version"):
            pytest.skip("no --json form")
        args = [*args, "--json"]
    with open(full_device, "wb") as sink:
        process = embedkit(args, stdout=sink)
        _, err = process.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2, (process.returncode, err.decode())
    assert len(lines) == 1 and lines[0].startswith("error: ") and "stdout" in lines[0], err.decode()


def test_items_to_stdout_on_a_full_device(full_device: Path, tmp_path: Path) -> None:
    with open(full_device, "wb") as sink:
        process = embedkit(["mine", FACES, "-s", "hard", "-o", "-", "-q"], stdout=sink, cwd=tmp_path)
        _, err = process.communicate(timeout=120)
    lines = [line for line in err.decode().strip().splitlines() if line.startswith("error")]
    assert process.returncode == 2, err.decode()
    assert len(lines) == 1 and "No space left" in lines[0] and "Traceback" not in err.decode(), err.decode()


def test_ctrl_c_while_python_imports_is_one_line_and_130() -> None:
    """A KeyboardInterrupt raised by an import of the app (as a Ctrl-C in that window would)."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from cli.entry import main\n"
        "main(['--version'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 130, done.stderr
    assert done.stderr == "error: interrupted\n"
    assert done.stdout == ""


def test_no_command_prints_help_and_a_clear_error() -> None:
    process = embedkit([], stdout=subprocess.PIPE)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert b"Usage" in out
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 10, err
