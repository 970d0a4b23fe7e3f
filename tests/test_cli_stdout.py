"""Failing stdout: a closed pipe ends quietly (0 or 141), a full device is one `error:` line
and exit 2, Ctrl-C while Python imports is `error: interrupted` and 130; never exit 1."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_streams import run_app
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
    "env": ["env"],
    "help": ["--help"],
    "loss-help": ["loss", "--help"],
    "version": ["--version"],
}


def embedkit(args: list[str], **kwargs) -> subprocess.Popen:
    """The console script's entry (embedkit.cli.entry) in a child process, from outside the repository."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.Popen([sys.executable, "-m", "embedkit.cli.entry", *args], env=env, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_stdout_closed_before_the_first_write_ends_quietly(name: str, tmp_path: Path) -> None:
    """In-process: stdout is a pipe whose reader is gone, so every write is EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    err_path = tmp_path / "stderr"
    with open(write_end, "wb", closefd=True) as out, open(err_path, "wb") as err:
        code = run_app(COMMANDS[name], out, err)
    err_text = err_path.read_text()
    assert code in (0, 141), (code, err_text)
    assert err_text == "", err_text


def test_console_script_with_a_closed_stdout() -> None:
    process = embedkit(["loss", "--help"], stdout=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode in (0, 141) and err == b"", (process.returncode, err)


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
def test_stdout_on_a_full_device_is_one_error_line_and_exit_2(name: str, as_json: bool, full_device: Path,
                                                               tmp_path: Path) -> None:
    args = COMMANDS[name]
    if as_json:
        if name in ("help", "loss-help", "version"):
            pytest.skip("no --json form")
        args = [*args, "--json"]
    err_path = tmp_path / "stderr"
    with open(full_device, "wb") as out, open(err_path, "wb") as err:
        code = run_app(args, out, err)
    lines = err_path.read_text().strip().splitlines()
    assert code == 2, (code, lines)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "stdout" in lines[0], lines


def test_console_script_on_a_full_device(full_device: Path) -> None:
    with open(full_device, "wb") as sink:
        process = embedkit(["eval", FACES, "--json"], stdout=sink)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert err.decode() == "error: cannot write to stdout: No space left on device\n"


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
        "from embedkit.cli.entry import main\n"
        "main(['--version'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 130, done.stderr
    assert done.stderr == "error: interrupted\n"
    assert done.stdout == ""


def test_no_command_prints_help_and_a_clear_error(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    code = run_app([], out, err)
    assert code == 2
    assert b"Usage" in out.getvalue()
    lines = err.getvalue().decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 10, err


def test_every_registered_command_is_covered_here() -> None:
    import typer.main
    from embedkit.cli.main import app

    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    covered = {args[0] for args in COMMANDS.values() if args and not args[0].startswith("-")}
    assert registered <= covered, f"add {sorted(registered - covered)} to this file's commands"


def test_a_file_written_before_stdout_closed_stays_whole(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    read_end, write_end = os.pipe()
    os.close(read_end)
    out = tmp_path / "t.parquet"
    with open(write_end, "wb", closefd=True) as stdout, open(tmp_path / "err", "wb") as err:
        code = run_app(["mine", FACES, "-s", "hard", "-o", str(out)], stdout, err)
    assert code in (0, 141)
    assert pq.read_table(out).num_rows == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err", "t.parquet"]  # no partial file left
