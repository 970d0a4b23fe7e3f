"""Acceptance bench (issue 16): a real 2-worker Dask cluster (separate ``dask scheduler`` and
``dask worker --nthreads 1`` processes) mines exact hard negatives of a float32 NPY file that
the workers read by path. Prints, per worker, the peak growth of its anonymous memory
(``RssAnon`` of /proc/PID/status, sampled every few ms; pages of the memory-mapped file are
``RssFile`` and do not count) over its idle baseline (taken after a warm-up run on a tiny
file, so imports and numba compilation are in the baseline), the time ratio against the
local engine, whether the outputs are identical, PASS/FAIL, and the measured per-task
throughput behind the README's paper estimate.

Goal: growth < 0.6 x matrix + 64 MiB on every worker; output identical to the local engine.

    python bench/bench_dask_memory.py                 # the acceptance size: 100 000 x 512
    python bench/bench_dask_memory.py --rows 20000    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

MIB = 2**20


def rss_anon(pid: int) -> int:
    """RssAnon of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no RssAnon for {pid}")


class Sampler(threading.Thread):
    """The peak RssAnon of some processes, sampled every ``period`` seconds."""

    def __init__(self, pids: list[int], period: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pids, self.period = pids, period
        self.peak = {pid: rss_anon(pid) for pid in pids}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_anon(pid))
                except (OSError, RuntimeError):
                    pass
            time.sleep(self.period)

    def stop(self) -> dict[int, int]:
        self.halt.set()
        self.join()
        return self.peak


def dask_cli() -> list[str]:
    """The ``dask`` command of this interpreter's environment."""
    found = os.path.join(os.path.dirname(sys.executable), "dask")
    return [found] if os.path.exists(found) else [sys.executable, "-m", "distributed.cli.dask_worker"]


def start_cluster(folder: str, workers: int, memory_limit: str) -> tuple[str, list[subprocess.Popen]]:
    """Separate scheduler and worker processes; returns the scheduler address and the processes."""
    scheduler_file = os.path.join(folder, "scheduler.json")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([*dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", scheduler_file], **quiet)]
    deadline = time.time() + 60
    while not os.path.exists(scheduler_file) and time.time() < deadline:
        time.sleep(0.1)
    with open(scheduler_file) as handle:
        address = json.load(handle)["address"]
    for _ in range(workers):
        procs.append(subprocess.Popen([*dask_cli(), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--memory-limit", memory_limit, "--no-dashboard",
                                       "--local-directory", folder], **quiet))
    return address, procs


def stripe_throughput(rows: int = 50_000, dim: int = 128, repeats: int = 3) -> float:
    """GFLOP/s of one exact hard-mining task (256 anchors x ``rows`` rows x ``dim``, BLAS and
    numba on one thread), the task a single-core worker runs; best of ``repeats``."""
    from threadpoolctl import threadpool_limits

    from embedkit.mapped import open_npy
    from embedkit.mining import blocked
    from embedkit.mining.keys import prepare

    folder = tempfile.mkdtemp(prefix="bench-dask-task-")
    try:
        path = os.path.join(folder, "x.npy")
        np.save(path, np.random.default_rng(1).standard_normal((rows, dim), dtype=np.float32))
        prep = prepare(open_npy(path), "euclidean")
        labels = np.arange(rows) % 1000
        anchors = np.arange(256)
        job = blocked._job(prep, labels, 64.0, 256, blocked.TILE_COLS, anchors=anchors, k=1)
        best = float("inf")
        with threadpool_limits(limits=1):
            blocked._nearest_stripe(job, (0, 256))  # compile / warm
            for _ in range(repeats):
                started = time.perf_counter()
                blocked._nearest_stripe(job, (0, 256))
                best = min(best, time.perf_counter() - started)
        return 256 * rows * dim * 2 / best / 1e9
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: Paper-estimate assumptions (README): 10^8 x 128 float32, IVF with these lists.
EST_ROWS, EST_DIM, EST_NLIST, EST_NPROBE = 10**8, 128, 65_536, 32


def paper_estimate(gflops: float) -> None:
    """Wall time, memory per worker and storage reads for 10^8 x 128 on 64 and 512 workers."""
    n, d = EST_ROWS, EST_DIM
    size = n * d * 4
    exact = 2.0 * n * n * d  # every anchor against every row (the square; a symmetric schedule halves it)
    members = n / EST_NLIST
    ivf_join = 2.0 * n * EST_NPROBE * members * d  # per list: its probing queries x its members
    assign = 2.0 * n * EST_NLIST * d  # each row against every centroid (flat coarse quantiser)
    print(f"paper estimate from {gflops:.1f} GFLOP/s per single-core worker (one 256-anchor task at d = 128), "
          f"{n:.0e} x {d} float32 = {size / 2**30:.1f} GiB:")
    for workers in (64, 512):
        print(f"  {workers} workers: exact {exact / gflops / 1e9 / workers / 86400:.1f} days "
              f"({exact / gflops / 1e9 / workers / 86400 / 2:.1f} with a symmetric schedule); "
              f"approximate (nlist {EST_NLIST}, nprobe {EST_NPROBE}) "
              f"{(ivf_join + assign) / gflops / 1e9 / workers / 3600:.2f} h "
              f"(join {ivf_join / gflops / 1e9 / workers / 3600:.2f} h + assignment "
              f"{assign / gflops / 1e9 / workers / 3600:.2f} h)")
    stripe_reads = (n / 256) * size
    print(f"  exact, memory per worker: one task's 256 x 2048 tile + 2048 x {d} column block + 256 anchor rows "
          f"(~3.2 MiB anonymous); terms, codes and anchor ids (8n bytes each, {8 * n / 2**30:.2f} GiB) go by "
          f"path and are read per stripe; storage reads: each task streams the whole file once "
          f"({size / 2**30:.1f} GiB): {stripe_reads / 2**50:.1f} PiB over {n // 256} tasks unless the file stays "
          f"in each host's page cache (then one read of {size / 2**30:.1f} GiB per host)")
    print(f"  approximate, memory per worker: one list's members ({members:.0f} rows, "
          f"{members * d * 4 / 2**20:.2f} MiB) and its probing queries (~{EST_NPROBE * members:.0f} rows, "
          f"{EST_NPROBE * members * d * 4 / 2**20:.1f} MiB); storage reads: the assignment pass "
          f"({size / 2**30:.1f} GiB), the members once ({size / 2**30:.1f} GiB) and every query row nprobe "
          f"times ({EST_NPROBE * size / 2**40:.2f} TiB, or one {size / 2**30:.1f} GiB pass per host whose "
          f"page cache holds the file)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="0", help="per worker, as dask worker takes it (0: none)")
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    parser.add_argument("--skip-local", action="store_true", help="no local-engine run (no identity check)")
    parser.add_argument("--estimate-only", action="store_true", help="only the per-task throughput and the estimate")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the cluster and remove the files
    paper_estimate(stripe_throughput())
    if args.estimate_only:
        return 0

    from distributed import Client

    from embedkit.engines.dask import DaskEngine
    from embedkit.execution import Execution
    from embedkit.io import load_dataset
    from embedkit.mining.strategies import MineSpec, mine

    folder = tempfile.mkdtemp(prefix="bench-dask-memory-")
    procs: list[subprocess.Popen] = []
    try:
        rng = np.random.default_rng(0)
        path, small = os.path.join(folder, "x.npy"), os.path.join(folder, "small.npy")
        labels = rng.integers(0, args.classes, args.rows)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.rows, args.dim))
        centres = rng.standard_normal((args.classes, args.dim)).astype(np.float32)
        for start in range(0, args.rows, 10_000):
            stop = min(args.rows, start + 10_000)
            out[start:stop] = centres[labels[start:stop]] + rng.standard_normal((stop - start, args.dim),
                                                                                 dtype=np.float32)
        out.flush()
        del out
        np.save(small, rng.standard_normal((2000, args.dim), dtype=np.float32))
        matrix = args.rows * args.dim * 4
        spec = MineSpec("hard", index="exact", metric=args.metric)  # type: ignore[arg-type]

        address, procs = start_cluster(folder, args.workers, args.memory_limit)
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(args.workers, timeout=120)
            pids = sorted(client.run(os.getpid).values())
        with DaskEngine(address) as engine:
            warm = load_dataset(small).embeddings
            mine(warm, rng.integers(0, 20, len(warm)), spec, execution=Execution(engine))  # imports + numba compilation
            time.sleep(1.0)
            baseline = {pid: rss_anon(pid) for pid in pids}
            data = load_dataset(path).embeddings
            sampler = Sampler(pids)
            sampler.start()
            started = time.perf_counter()
            remote = mine(data, labels, spec, execution=Execution(engine))
            dask_seconds = time.perf_counter() - started
            peak = sampler.stop()
        print(f"matrix: {args.rows} x {args.dim} float32 = {matrix / MIB:.1f} MiB, {args.metric}, exact hard "
              f"mining; {args.workers} workers x 1 thread, --memory-limit {args.memory_limit}")
        limit = 0.6 * matrix + 64 * MIB
        ok = True
        for pid in pids:
            growth = peak[pid] - baseline[pid]
            ok &= growth < limit
            print(f"worker {pid}: idle RssAnon {baseline[pid] / MIB:.1f} MiB, peak {peak[pid] / MIB:.1f} MiB, "
                  f"growth {growth / MIB:.1f} MiB = {growth / matrix:.3f} x matrix "
                  f"(goal < 0.6 x matrix + 64 MiB = {limit / MIB:.1f} MiB)")
        print(f"{'PASS' if ok else 'FAIL'} worker anonymous memory growth < 0.6 x matrix + 64 MiB")
        tasks = -(-args.rows // 256)
        per_task = dask_seconds * args.workers / tasks
        products = 256 * args.rows * args.dim * 2
        print(f"dask: {dask_seconds:.2f} s for {tasks} anchor-stripe tasks (256 anchors x all {args.rows} rows): "
              f"{per_task:.3f} s per task per worker = {products / per_task / 1e9:.1f} GFLOP/s per worker "
              f"(GEMM flops only; {256 * args.rows / per_task / 1e9:.3f} G anchor-row pairs/s per worker)")
        if not args.skip_local:
            started = time.perf_counter()
            local = mine(load_dataset(path).embeddings, labels, spec, execution=Execution.local(args.workers))
            local_seconds = time.perf_counter() - started
            same = local.items.keys() == remote.items.keys() and all(
                np.array_equal(local.items[k], remote.items[k]) for k in local.items)
            print(f"local engine ({args.workers} threads): {local_seconds:.2f} s; dask / local time "
                  f"{dask_seconds / local_seconds:.2f}x")
            print(f"{'PASS' if same else 'FAIL'} output identical to the local engine")
            ok &= same
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
