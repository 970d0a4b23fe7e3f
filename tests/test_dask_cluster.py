"""A real Dask cluster, as the README's recipe starts it: a separate ``dask scheduler``
process and ``dask worker --nthreads 1 --memory-limit ...`` processes, one of them with a
memory limit below the size of the matrix it mines (the workers read the file by path).
``embedkit mine --engine dask --scheduler tcp://...`` writes what ``--engine local`` writes."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The matrix: 10 000 x 12 288 float32 = 469 MiB, above the limited worker's memory limit.
#: (A worker process starts at ~200 MB resident: the limit must leave room for that, and
#: Dask pauses a worker at 80 % of it and restarts it at 95 %.)
ROWS, DIM = 10_000, 12_288
LIMITED = "400MB"


def recipe() -> list[str]:
    """The three commands of the README's 'Joining a real cluster' block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("**Joining a real cluster.**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_typed(line: str, port: int, shared: Path) -> list[str]:
    """A README command with the example host, port and shared folder of this machine."""
    line = line.replace("tcp://sched:8786", f"tcp://127.0.0.1:{port}").replace("/shared/", f"{shared}/")
    words = shlex.split(line.replace("--port 8786", f"--port {port}").replace("--host 0.0.0.0", "--host 127.0.0.1"))
    return [str(BIN / words[0]) if (BIN / words[0]).exists() else words[0], *words[1:]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    shared = tmp_path_factory.mktemp("shared")
    rng = np.random.default_rng(0)
    out = np.lib.format.open_memmap(shared / "emb.npy", mode="w+", dtype=np.float32, shape=(ROWS, DIM))
    for start in range(0, ROWS, 1_000):
        out[start:start + 1_000] = rng.standard_normal((1_000, DIM), dtype=np.float32)
    out.flush()
    del out
    np.save(shared / "labels.npy", rng.integers(0, 50, ROWS))
    scheduler, worker, _ = recipe()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen(as_typed(scheduler, port, shared), cwd=shared, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        from distributed import Client

        def start_worker(limit: str | None) -> str:
            command = as_typed(worker, port, shared)
            if limit is not None:
                command[command.index("--memory-limit") + 1] = limit
            procs.append(subprocess.Popen(command, cwd=shared, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            return command[command.index("--memory-limit") + 1]

        limits = [start_worker(None)]  # the README's worker
        deadline = time.time() + 60
        while True:
            try:
                client = Client(address, timeout="5s")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        client.wait_for_workers(1, timeout=60)
        # Compile (and cache) the numba kernels on the README's worker first, for every strategy
        # the tests run (a worker's arrays arrive read-only: kernels of their own types), so the
        # limited worker loads them from the cache: LLVM compiling would count against its limit.
        for strategy in (["hard", "--batch-size", "64"], ["semi-hard", "--margin", "0.5"]):
            warm = run_embedkit([str(BIN / "embedkit"), "mine", str(ROOT / "sample_data" / "emb.npy"), "--strategy",
                                 *strategy, "--engine", "dask", "--scheduler", address, "-o",
                                 str(shared / "warm.csv"), "--quiet"], shared)
            assert warm.returncode == 0, warm.stderr
        limits.append(start_worker(LIMITED))  # and one whose limit is below the matrix size
        client.wait_for_workers(2, timeout=60)
        yield {"shared": shared, "port": port, "client": client, "limits": limits}
        client.close()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_embedkit(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EMBEDKIT_SCHEDULER", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_recipe_is_what_this_test_runs() -> None:
    scheduler, worker, mine = recipe()
    assert scheduler.startswith("dask scheduler ") and worker.startswith("dask worker tcp://sched:8786 ")
    assert re.search(r"--nthreads 1\b", worker) and "--memory-limit" in worker
    assert mine.startswith("embedkit mine /shared/emb.npy ") and "--engine dask --scheduler tcp://sched:8786" in mine


def test_mine_on_a_real_cluster_matches_the_local_engine(cluster) -> None:
    from dask.utils import parse_bytes

    shared, port, client = cluster["shared"], cluster["port"], cluster["client"]
    assert parse_bytes(LIMITED) < ROWS * DIM * 4  # the limited worker could not hold the matrix
    assert [parse_bytes(limit) for limit in cluster["limits"]][1] == parse_bytes(LIMITED)
    pids = client.run(os.getpid)
    _, _, mine = recipe()
    outputs = {}
    for engine in ("dask", "local"):
        command = as_typed(mine, port, shared)
        out = command[command.index("-o") + 1]
        command[command.index("-o") + 1] = f"{engine}-{out}"
        if engine == "local":
            at = command.index("--engine")
            command[at:at + 4] = ["--engine", "local"]  # drop --scheduler too
        result = run_embedkit([*command, "--quiet"], shared)
        assert result.returncode == 0, result.stderr
        outputs[engine] = (shared / f"{engine}-{out}").read_bytes()
    assert outputs["dask"] == outputs["local"] and len(outputs["local"]) > 1000
    # Both workers are still there (run alone, the limited one is never restarted; inside the
    # whole suite its nanny has been seen to restart it once: its tasks then re-run and the
    # output stays identical, which is what this test pins).
    client.wait_for_workers(2, timeout=60)
    assert len(client.run(os.getpid)) == len(pids) == 2


def test_exact_mining_on_a_real_cluster_matches_the_local_engine(cluster) -> None:
    shared, port = cluster["shared"], cluster["port"]
    sample = ROOT / "sample_data" / "emb.npy"
    outputs = {}
    for engine in ("dask", "local"):
        options = ["--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"] if engine == "dask" else []
        result = run_embedkit([str(BIN / "embedkit"), "mine", str(sample), "--strategy", "semi-hard", "--margin",
                               "0.5", *options, "-o", f"exact-{engine}.csv", "--quiet"], shared)
        assert result.returncode == 0, result.stderr
        outputs[engine] = (shared / f"exact-{engine}.csv").read_bytes()
    assert outputs["dask"] == outputs["local"] and outputs["local"].count(b"\n") > 10
