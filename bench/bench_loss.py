"""All-pairs contrastive loss: the whole `embedkit loss` command against the X·Xᵀ floor.

Writes N × D float32 embeddings (unit-normalised Gaussian) and labels of C classes to a
temporary folder, then in the same process, alternating the cases ``--repeats`` times and
keeping the best time of each (a shared machine slows them alike):

1. the float32 matrix product X·Xᵀ (row stripes of 4096, the same flops as one n×n
   product; OpenBLAS cannot form a >2³¹-element output in one call), the floor every
   all-pairs method pays at least once (the loss scans only the upper triangle: half);
2. `embedkit loss --kind contrastive --margin M FILE --json` end to end in a child process
   (start-up, reading, the scan, output), with its peak memory (/usr/bin/time);
3. the library call alone, in this process (`compute_loss`, the tiled kernel).

The acceptance ratio is the whole command's: ratio = command / floor, goal <= 0.75, peak
memory < 1 GiB. The warm-up run before the timings fills numba's kernel cache and Python's
bytecode cache of embedkit (``PYTHONDONTWRITEBYTECODE`` is lifted for that one run: an
installed wheel ships compiled bytecode, an editable checkout under that variable would
recompile embedkit's modules on every start, ~0.1 s). ``--profile`` adds a one-thread breakdown of the scan on the first
``--profile-rows`` rows: GEMM of the upper-triangle tiles vs the per-tile kernel.

    python bench/bench_loss.py                  # 50 000 × 128, the acceptance run
    python bench/bench_loss.py --rows 10000     # a quick run
    python bench/bench_loss.py --rows 10000 --repeats 1 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_RATIO = 0.75
GOAL_PEAK_MIB = 1024


def make_data(folder: Path, rows: int, dim: int, classes: int, seed: int) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = folder / "bench.npy"
    np.save(path, x)
    np.save(folder / "bench.labels.npy", rng.integers(0, classes, rows))
    return path


def time_floor(x: np.ndarray, stripe: int = 4096) -> float:
    start = time.perf_counter()
    for first in range(0, len(x), stripe):
        x[first : first + stripe] @ x.T
    return time.perf_counter() - start


def time_command(path: Path, margin: float, *, write_bytecode: bool = False) -> tuple[float, dict, int | None]:
    """Wall time, JSON result and peak RSS (KiB, from /usr/bin/time when present) of the command;
    ``write_bytecode``: let Python write its bytecode cache (the warm-up run)."""
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    command = [exe, "loss", "--kind", "contrastive", "--margin", str(margin), str(path), "--json", "--quiet"]
    timer = ["/usr/bin/time", "-f", "peak_kib=%M"] if os.path.exists("/usr/bin/time") else []
    env = {k: v for k, v in os.environ.items() if not (write_bytecode and k == "PYTHONDONTWRITEBYTECODE")}
    start = time.perf_counter()
    done = subprocess.run(timer + command, check=True, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak_kib=")]
    return elapsed, json.loads(done.stdout), int(peak[-1].split("=")[1]) if peak else None


def time_library(x: np.ndarray, labels: np.ndarray, margin: float) -> tuple[float, float]:
    """Wall time and total of the library call (the tiled kernel, default workers)."""
    from embedkit.dataset import Dataset
    from embedkit.losses.compute import LossSpec, compute_loss

    start = time.perf_counter()
    result = compute_loss(Dataset(embeddings=x, source="bench", labels=labels), LossSpec("contrastive", margin=margin),
                          enumerate_pairs_below=0)
    return time.perf_counter() - start, result.total


def profile(x: np.ndarray, labels: np.ndarray, margin: float) -> None:
    """One thread: the GEMM of the upper-triangle tiles vs the per-tile kernel vs the rest."""
    from threadpoolctl import threadpool_limits

    import embedkit.losses.allpairs as allpairs
    from embedkit.execution import Execution
    from embedkit.losses import pair_kernel

    one = Execution.local(1)
    spent = {"gemm+centring": 0.0, "kernel": 0.0}
    kernel = pair_kernel.contrastive_tile
    tiles = allpairs.gram_tiles

    def timed_kernel(*args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        kernel(*args)
        spent["kernel"] += time.perf_counter() - start

    def timed_tiles(*args, **kwargs):  # type: ignore[no-untyped-def]
        produce = tiles(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(produce)
            except StopIteration:
                return
            finally:
                spent["gemm+centring"] += time.perf_counter() - start
            yield item

    allpairs.scan_label_pairs(x[:256], labels[:256], form=0, margins=(margin,), execution=one)  # compile/load
    allpairs.contrastive_tile, allpairs.gram_tiles = timed_kernel, timed_tiles
    try:
        with threadpool_limits(1):
            floor = time_floor(x)
            start = time.perf_counter()
            allpairs.scan_label_pairs(x, labels, form=0, margins=(margin,), execution=one)
            whole = time.perf_counter() - start
    finally:
        allpairs.contrastive_tile, allpairs.gram_tiles = kernel, tiles
    pairs = len(x) * (len(x) - 1) // 2
    rest = whole - spent["gemm+centring"] - spent["kernel"]
    print(f"profile, one thread, {len(x):,} rows (tile {allpairs.TILE_ROWS} x {allpairs.TILE_COLS}, "
          f"blocks of {pair_kernel.BLOCK} columns):")
    print(f"  full X·Xᵀ product:              {floor:7.3f} s")
    for name, seconds in (*spent.items(), ("rest (merge, setup)", rest), ("scan total", whole)):
        print(f"  {name + ':':32s}{seconds:7.3f} s   {seconds / floor:5.2f} x product")
    print(f"  kernel: {pairs / spent['kernel'] / 1e6:,.0f} M pairs/s; kernel / GEMM = "
          f"{spent['kernel'] / spent['gemm+centring']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="alternate the cases this often, keep the best")
    parser.add_argument("--profile", action="store_true", help="add a one-thread GEMM/kernel breakdown")
    parser.add_argument("--profile-rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_data(Path(tmp), args.rows, args.dim, args.classes, args.seed)
        x = np.load(path)
        labels = np.load(Path(tmp) / "bench.labels.npy")
        # numba compiles the kernel on the very first run after install and caches it:
        # a small run fills that cache (and Python's bytecode cache, as an installed wheel
        # has it) so the timing below is the steady state.
        warm = make_data(Path(tmp) / "warm", 2_000, args.dim, args.classes, args.seed)
        cold, _, _ = time_command(warm, args.margin, write_bytecode=True)
        time_library(x[:2_000], labels[:2_000], args.margin)
        floors, commands, libraries, peaks = [], [], [], []
        for _ in range(max(1, args.repeats)):
            floors.append(time_floor(x))
            elapsed, result, peak_kib = time_command(path, args.margin)
            commands.append(elapsed)
            peaks.append(peak_kib)
            seconds, total = time_library(x, labels, args.margin)
            libraries.append(seconds)
        if args.profile:
            profile(x[: args.profile_rows], labels[: args.profile_rows], args.margin)
    floor, command, library = min(floors), min(commands), min(libraries)
    pairs = args.rows * (args.rows - 1) // 2
    ratio = command / floor
    print(f"data: {args.rows:,} x {args.dim} float32, {args.classes} classes, {pairs:,} pairs, {os.cpu_count()} cores, "
          f"best of {len(floors)}, load average {os.getloadavg()[0]:.1f}")
    print(f"warm-up run (2 000 rows):        {cold:7.2f} s   (numba's one-time compile if not cached; "
          "writes the bytecode cache)")
    print(f"floor  X·Xᵀ float32 (stripes):  {floor:7.2f} s")
    print(f"library call (compute_loss):    {library:7.2f} s   {pairs / library / 1e6:,.0f} M pairs/s   "
          f"{library / floor:5.2f} x floor")
    print(f"embedkit loss (whole command):  {command:7.2f} s   {pairs / command / 1e6:,.0f} M pairs/s   "
          f"start-up, reading, exit: {command - library:5.2f} s over the library call")
    print(f"acceptance ratio command / floor: {ratio:5.2f}   goal <= {GOAL_RATIO}   "
          f"{'PASS' if ratio <= GOAL_RATIO else 'FAIL'}")
    if all(p is not None for p in peaks):
        peak_mib = max(p for p in peaks if p is not None) / 1024
        print(f"peak memory of the command:     {peak_mib:7.0f} MiB   goal < {GOAL_PEAK_MIB} MiB   "
              f"{'PASS' if peak_mib < GOAL_PEAK_MIB else 'FAIL'}")
    else:
        print("peak memory of the command:     unknown (no /usr/bin/time)   FAIL")
    print(f"loss = {result['loss']:.6f}, active = {result['active']:,} of {result['count']:,} "
          f"(library total {total:.6f})")


if __name__ == "__main__":
    main()
