"""An interrupted run (SIGINT, SIGTERM) exits 130/143 and leaves no partial output file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from embedkit.cli.main import app

REGISTERED = {c.name for c in app.registered_commands}


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    code = "import sys; from embedkit.cli.entry import main; main(sys.argv[1:])"  # the console script's own entry
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_until_reading(process: subprocess.Popen[bytes], name: str, timeout: float = 120.0) -> None:
    """Wait until the command has memory-mapped its input ``name``: start-up (imports) is over and
    the work has begun, however loaded the machine is."""
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if name in maps.read_text():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the command never started reading {name}")


def interrupt(process: subprocess.Popen[bytes], signum: int, folder: Path, after: float) -> tuple[int, str]:
    wait_until_reading(process, ".npy")
    time.sleep(after)
    assert process.poll() is None, "the run ended before it could be interrupted; make it longer"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    return process.returncode, err.decode()


@pytest.fixture
def big_input(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.standard_normal((6000, 32)).astype(np.float32))
    np.save(tmp_path / "e.labels.npy", rng.integers(0, 50, 6000))
    return tmp_path / "e.npy"


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_loss_leaves_no_output(big_input: Path, signum: int, code: int) -> None:
    folder = big_input.parent
    before = sorted(p.name for p in folder.iterdir())
    process = start(["loss", "--kind", "contrastive", str(big_input), "-o", "items.parquet", "--quiet"], folder)
    returncode, err = interrupt(process, signum, folder, after=1.0)
    assert returncode == code, err
    if signum == signal.SIGINT:
        assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert sorted(p.name for p in folder.iterdir()) == before, "a partial output was left behind"
    assert "Traceback" not in err


@pytest.mark.skipif("mine" not in REGISTERED, reason="mine is not registered")
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_mine_leaves_no_output(tmp_path: Path, signum: int, code: int) -> None:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "m.npy", rng.standard_normal((60000, 64)).astype(np.float32))
    np.save(tmp_path / "m.labels.npy", rng.integers(0, 100, 60000))
    before = sorted(p.name for p in tmp_path.iterdir())
    process = start(["mine", "m.npy", "--strategy", "semi-hard", "--select", "all", "-o", "t.parquet", "--quiet"], tmp_path)
    returncode, err = interrupt(process, signum, tmp_path, after=1.5)
    assert returncode == code, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a partial output was left behind"
    assert "Traceback" not in err
