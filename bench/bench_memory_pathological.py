"""Peak memory (RSS) of ``check`` on pathological NPY files (issue 10).

Two sparse NPY files of ``--gib`` GiB (float32, ``--dim`` columns, default 1.5 GiB × 256):

- ``nan``: every row zero except one NaN row; ``check -r nan_rows==0`` must fail (exit 1)
  without copying the finite rows (0.1 copied the whole finite matrix: 4.3 GB on 2 GB).
- ``equal``: every row equal; ``check -r duplicate_rows>=0`` hashes and compares the
  rows in blocks (0.1 copied every hash-sharing row: 8.4 GB on 2 GB).

Each command runs as its own process; its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN)`` (one child at a time, read as a difference of
the running maximum is not possible, so every run is a fresh ``python -c`` wrapper that
reports its own child's figure). Printed: wall time, peak RSS in MiB, that peak as a
multiple of ``embedkit --version`` (the interpreter with numpy, FAISS, pyarrow loaded)
and as a fraction of the file size, and whether it is under ``--limit-mib`` (600).

Not part of the test suite. Usage::

    python bench/bench_memory_pathological.py            # 1.5 GiB files
    python bench/bench_memory_pathological.py --gib 0.1  # quick run
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MEASURE = (
    "import json, resource, subprocess, sys; "
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "print(json.dumps({'code': r.returncode, 'kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "'err': r.stderr.decode()[-300:]}))"
)


def sparse_npy(path: Path, rows: int, dim: int, fill: str) -> None:
    """A float32 NPY of zeros written as a sparse file (holes), plus one NaN row or all rows 1.0."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    if fill == "nan":
        header[rows // 2, 3] = np.nan  # one NaN row in the middle; the rest stay holes
    else:
        step = max(1, (64 << 20) // (dim * 4))
        for start in range(0, rows, step):  # every row equal (and not a hole: a real 1.0 pattern)
            header[start:start + step] = 1.0
            header.flush()
    header.flush()
    del header


def measure(args: list[str]) -> tuple[int, float, float, str]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    return report["code"], time.perf_counter() - started, report["kib"] / 1024, report["err"].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.5, help="size of each file in GiB")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--limit-mib", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    opts = parser.parse_args()
    rows = max(2, int(opts.gib * 2**30) // (opts.dim * 4))
    embedkit = [sys.executable, "-c", "import sys; from embedkit.cli.main import main; main(sys.argv[1:])"]
    folder = Path(tempfile.mkdtemp(prefix="embedkit-bench-patho-"))
    try:
        print(f"{rows:,} rows x {opts.dim} float32 = {rows * opts.dim * 4 / 2**30:.2f} GiB per file, in {folder}")
        sparse_npy(folder / "nan.npy", rows, opts.dim, "nan")
        sparse_npy(folder / "equal.npy", rows, opts.dim, "equal")
        size_mib = (folder / "nan.npy").stat().st_size / 2**20
        _, _, base, _ = measure([*embedkit, "--version"])
        print(f"baseline  embedkit --version: peak {base:.0f} MiB")
        cases = [
            ("nan_rows==0 (one NaN row)", [*embedkit, "check", str(folder / "nan.npy"), "-r", "nan_rows==0"], 1),
            ("duplicate_rows>=0 (all rows equal)", [*embedkit, "check", str(folder / "equal.npy"),
                                                   "-r", "duplicate_rows>=0"], 0),
            ("duplicate_rows>=0 (one NaN row)", [*embedkit, "check", str(folder / "nan.npy"),
                                                "-r", "duplicate_rows>=0"], 0),
        ]
        print(f"{'check -r':38} {'exit':>4} {'wall s':>7} {'peak MiB':>9} {'x base':>7} {'x file':>7}  under {opts.limit_mib:.0f}")
        for name, args, expected in cases:
            code, wall, peak, err = measure(args)
            flag = "yes" if peak < opts.limit_mib else "NO"
            print(f"{name:38} {code:>4} {wall:>7.1f} {peak:>9.0f} {peak / base:>7.2f} {peak / size_mib:>7.3f}  {flag}")
            if code != expected:
                print(f"  unexpected exit {code} (expected {expected}): {err}")
    finally:
        if not opts.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
