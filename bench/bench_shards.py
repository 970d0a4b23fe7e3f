"""A folder of Parquet shards against the same rows as one Parquet file (issue 12).

Writes ``--rows`` × ``--dim`` float32 embeddings (default 1 000 000 × 128 = 488 MiB) with an
integer ``label`` column twice: as one Parquet file and as ``--shards`` Parquet parts in a
folder (plus ``_SUCCESS``, as Spark writes it). Then runs, each as its own process under
``/usr/bin/time``, on the file and on the folder:

- ``inspect`` (reads the whole matrix, scans it, samples pair distances)
- ``loss --kind contrastive --pairs pairs.csv`` (``--pairs-count`` random pairs, default 100 000)

and prints, per command, wall time and peak RSS of each run, the time ratio folder / file
(target <= 1.2) and the folder's peak RSS as a multiple of the matrix (target <= 2). Each
pair of runs is repeated ``--repeat`` times (default 3) and the fastest time and largest
peak are kept, so a burst of load from other processes does not decide the ratio. The
two inputs are run alternately, so both see the same machine.

Not part of the test suite. Usage::

    python bench/bench_shards.py                  # 1 000 000 rows, 8 shards
    python bench/bench_shards.py --rows 100000    # a quick run
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TIME = "/usr/bin/time"
MIB = 1024 * 1024


def make_table(x: np.ndarray, labels: np.ndarray) -> pa.Table:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    return pa.table({"label": labels, "embedding": vectors})


def write_inputs(folder: Path, rows: int, dim: int, shards: int, pairs: int, seed: int) -> tuple[Path, Path, Path]:
    """One file, a folder of ``shards`` parts with the same rows in the same order, and pairs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 1000, rows)
    single = folder / "one.parquet"
    parts = folder / "parts"
    parts.mkdir()
    bounds = np.linspace(0, rows, shards + 1).astype(int)
    step = 131_072
    with pq.ParquetWriter(single, make_table(np.zeros((0, dim), np.float32), labels[:0]).schema) as writer:
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            with pq.ParquetWriter(parts / f"part-{k:05d}.parquet", writer.schema) as part:
                for start in range(a, b, step):
                    stop = min(b, start + step)
                    block = make_table(rng.standard_normal((stop - start, dim), dtype=np.float32), labels[start:stop])
                    writer.write_table(block)  # the same row groups in both layouts
                    part.write_table(block)
    (parts / "_SUCCESS").write_bytes(b"")
    i = rng.integers(0, rows, pairs)
    j = (i + rng.integers(1, rows, pairs)) % rows
    y = (labels[i] == labels[j]).astype(np.int64)
    pairs_csv = folder / "pairs.csv"
    np.savetxt(pairs_csv, np.column_stack([i, j, y]), fmt="%d", delimiter=",", header="i,j,y", comments="")
    return single, parts, pairs_csv


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command in its own process."""
    command = [sys.executable, "-m", "embedkit.cli.main", *args]
    if os.path.exists(TIME):
        command = [TIME, "-f", "%M", *command]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr}")
    if os.path.exists(TIME):
        peak_kib = float(done.stderr.strip().splitlines()[-1])
    else:  # getrusage of the children: the largest child so far
        import resource

        peak_kib = float(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return seconds, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--pairs-count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    options = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        started = time.perf_counter()
        single, parts, pairs = write_inputs(scratch, options.rows, options.dim, options.shards,
                                            options.pairs_count, options.seed)
        matrix_mib = options.rows * options.dim * 4 / MIB
        print(f"{options.rows:,} × {options.dim} float32 = {matrix_mib:.0f} MiB; one file "
              f"{single.stat().st_size / MIB:.0f} MiB vs {options.shards} shards in {parts.name}/ "
              f"(written in {time.perf_counter() - started:.1f} s); best of {options.repeat}")
        commands = {
            "inspect": ["inspect", "{}", "--json"],
            "loss --pairs": ["loss", "--kind", "contrastive", "--pairs", str(pairs), "{}", "--json"],
        }
        base_s, base_mib = run(["--version"])
        print(f"interpreter baseline (embedkit --version): {base_mib:.0f} MiB peak, {base_s:.2f} s")
        print(f"{'command':<14}{'file s':>9}{'folder s':>10}{'time ratio':>12}{'file MiB':>10}"
              f"{'folder MiB':>12}{'folder/matrix':>15}")
        ok = True
        for name, template in commands.items():
            best: dict[str, tuple[float, float]] = {}
            for _ in range(options.repeat):
                for label, path in (("file", single), ("folder", parts)):
                    seconds, peak = run([a.replace("{}", str(path)) for a in template])
                    prev = best.get(label, (float("inf"), 0.0))
                    best[label] = (min(prev[0], seconds), max(prev[1], peak))
            ratio = best["folder"][0] / best["file"][0]
            memory = best["folder"][1] / matrix_mib
            ok &= ratio <= 1.2 and memory <= 2.0
            print(f"{name:<14}{best['file'][0]:>9.2f}{best['folder'][0]:>10.2f}{ratio:>12.3f}"
                  f"{best['file'][1]:>10.0f}{best['folder'][1]:>12.0f}{memory:>15.2f}")
        print("targets: time ratio <= 1.2, folder peak <= 2.0 × matrix:", "met" if ok else "NOT met")
    finally:
        if options.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
