"""All-pairs contrastive loss: the whole `embedkit loss` command against the X·Xᵀ floor.

Writes N × D float32 embeddings (unit-normalised Gaussian) and labels of C classes to a
temporary folder, then in the same process:

1. times the float32 matrix product X·Xᵀ (row stripes of 4096, the same flops as one
   n×n product; OpenBLAS cannot form a >2³¹-element output in one call), the floor every
   all-pairs method pays at least once;
2. times `embedkit loss --kind contrastive --margin M FILE --json` end to end in a child
   process (start-up, reading, the scan, output), with its peak memory (/usr/bin/time);
3. prints pairs per second and the ratio command / floor.

    python bench/bench_loss.py                  # 50 000 × 128, goal: ratio <= 1.2, < 1 GiB
    python bench/bench_loss.py --rows 10000     # a quick run
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


def make_data(folder: Path, rows: int, dim: int, classes: int, seed: int) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = folder / "bench.npy"
    np.save(path, x)
    np.save(folder / "bench.labels.npy", rng.integers(0, classes, rows))
    return path


def time_floor(path: Path, stripe: int = 4096) -> float:
    x = np.load(path)
    start = time.perf_counter()
    for first in range(0, len(x), stripe):
        x[first : first + stripe] @ x.T
    return time.perf_counter() - start


def time_command(path: Path, margin: float) -> tuple[float, dict, int | None]:
    """Wall time, JSON result and peak RSS (KiB, from /usr/bin/time when present) of the command."""
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    command = [exe, "loss", "--kind", "contrastive", "--margin", str(margin), str(path), "--json", "--quiet"]
    timer = ["/usr/bin/time", "-f", "peak_kib=%M"] if os.path.exists("/usr/bin/time") else []
    start = time.perf_counter()
    done = subprocess.run(timer + command, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak_kib=")]
    return elapsed, json.loads(done.stdout), int(peak[-1].split("=")[1]) if peak else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_data(Path(tmp), args.rows, args.dim, args.classes, args.seed)
        # numba compiles the kernel on the very first run after install and caches it:
        # a small run fills that cache so the timing below is the steady state.
        warm = make_data(Path(tmp) / "warm", 2_000, args.dim, args.classes, args.seed)
        cold, _, _ = time_command(warm, args.margin)
        floor = time_floor(path)
        elapsed, result, peak_kib = time_command(path, args.margin)
    pairs = args.rows * (args.rows - 1) // 2
    print(f"data: {args.rows:,} x {args.dim} float32, {args.classes} classes, {pairs:,} pairs, {os.cpu_count()} cores")
    print(f"warm-up run (2 000 rows):        {cold:7.2f} s   (includes numba's one-time compile if not cached)")
    print(f"floor  X·Xᵀ float32 (stripes):  {floor:7.2f} s")
    print(f"embedkit loss (whole command):  {elapsed:7.2f} s   {pairs / elapsed / 1e6:,.0f} M pairs/s")
    print(f"ratio command / floor:          {elapsed / floor:7.2f}   (goal <= 1.2)")
    if peak_kib is not None:
        print(f"peak memory of the command:     {peak_kib / 1024:7.0f} MiB (goal < 1024)")
    print(f"loss = {result['loss']:.6f}, active = {result['active']:,} of {result['count']:,}")


if __name__ == "__main__":
    main()
