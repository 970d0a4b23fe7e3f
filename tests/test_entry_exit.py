"""The console script ends with ``os._exit`` after the command (no interpreter teardown):
exit codes, output, ``atexit`` handlers and the fallback when another thread still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for a library's atexit handler (logging, multiprocessing, tempfile finalizers):
# it must still run, after the command's output and before the process ends.
PRELUDE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('atexit ran', file=sys.stderr, flush=True))\n"
)


def entry(args: list[str], cwd: Path, prelude: str = PRELUDE) -> subprocess.CompletedProcess[str]:
    code = prelude + "from embedkit.cli.entry import main\nmain(sys.argv[1:])\n"
    return subprocess.run([sys.executable, "-c", code, *args], check=False, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_codes_output_and_atexit_handlers_survive_the_fast_exit(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    passed = entry(["check", "emb.npy", "-r", "rows==40", "--json"], tmp_path)
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["passed"] is True  # the whole JSON document reached the pipe
    assert passed.stderr.splitlines()[-1] == "atexit ran", passed.stderr

    failed = entry(["check", "emb.npy", "-r", "rows>=41"], tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.splitlines()[-1] == "atexit ran", failed.stderr

    bad = entry(["check", "missing.npy", "-r", "rows>=1"], tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.splitlines() == [bad.stderr.splitlines()[0], "atexit ran"], bad.stderr
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_a_running_non_daemon_thread_gets_the_ordinary_exit(tmp_path: Path) -> None:
    """The interpreter waits for such a thread; ``os._exit`` would cut it off."""
    prelude = PRELUDE + (
        "import threading, time\n"
        "def late():\n"
        "    time.sleep(1.0)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
    )
    done = entry(["--version"], tmp_path, prelude)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [done.stdout.splitlines()[0], "thread finished"], done.stdout
    assert done.stdout.startswith("embedkit ")
