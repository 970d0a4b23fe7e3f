"""Peak memory (RSS) of every embedkit command on a large NPY file (issue 5).

Writes ``--rows`` × ``--dim`` float32 embeddings (default 2 000 000 × 128 ≈ 1 GiB)
with integer labels in a scratch folder, then runs each command as its own process
under ``/usr/bin/time -f %M`` and prints its wall time, its peak resident set size and
that peak as a multiple of the embedding file it reads, plus the sampled peaks of the
anonymous and the file-backed parts of that RSS (the latter: shared libraries, about
95 MiB, and the pages of the memory-mapped input, page cache the kernel can drop, not
memory the command allocated):

- ``loss --kind contrastive --pairs`` (``--pairs-count`` random pairs, default 100 000)
- ``loss --kind triplet --triplets`` (as many valid triplets)
- ``mine --strategy hard --index ivf`` (the approximate index; exact mining of every
  pair of 2 M rows is an O(n²) scan)
- ``eval`` on a ``--eval-rows`` subset (default 200 000): eval is one exact k-NN search
  of every row against every row, O(n²·dim); at 2 M rows that is 100× the work of the
  subset, hours on 2 cores
- ``inspect`` (sampled pair distances) and ``check -r nan_rows==0``

plus ``embedkit --version``: the interpreter with numpy, pyarrow, FAISS and numba loaded,
which every command pays whatever the input size.

Not part of the test suite. Usage::

    python bench/bench_memory.py                       # 2 000 000 rows
    python bench/bench_memory.py --rows 200000 --eval-rows 50000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIME = "/usr/bin/time"


def write_embeddings(path: Path, rows: int, dim: int, classes: int, latent: int, seed: int) -> np.ndarray:
    """Clustered rows in a ``latent``-d space mapped to ``dim`` (so an IVF index has structure),
    written block by block into an NPY memory map: the bench itself never holds the matrix."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    centres = rng.standard_normal((classes, latent), dtype=np.float32)
    w = (rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    step = 100_000
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        z = centres[labels[start:stop]] + 0.35 * rng.standard_normal((stop - start, latent), dtype=np.float32)
        out[start:stop] = z @ w + 0.01 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    out.flush()
    del out
    np.save(path.with_name(path.stem + ".labels.npy"), labels)
    return labels


def write_items(folder: Path, labels: np.ndarray, count: int, seed: int) -> tuple[Path, Path]:
    """``count`` random pairs (i, j, y) and ``count`` valid triplets, as CSV."""
    rng = np.random.default_rng(seed + 1)
    n = len(labels)
    i = rng.integers(0, n, count)
    j = (i + rng.integers(1, n, count)) % n
    y = (labels[i] == labels[j]).astype(np.int64)
    pairs = folder / "pairs.csv"
    np.savetxt(pairs, np.column_stack([i, j, y]), fmt="%d", delimiter=",", header="i,j,y", comments="")
    # Triplets: a random anchor, another row of its class, a row of another class.
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    sizes = np.diff(starts)
    anchors = rng.integers(0, n, count * 2)
    anchors = anchors[sizes[labels[anchors]] >= 2][:count]
    lab = labels[anchors]
    positives = order[starts[lab] + rng.integers(0, sizes[lab])]
    clash = positives == anchors
    while clash.any():
        positives[clash] = order[starts[lab[clash]] + rng.integers(0, sizes[lab[clash]])]
        clash = positives == anchors
    negatives = rng.integers(0, n, len(anchors))
    clash = labels[negatives] == lab
    while clash.any():
        negatives[clash] = rng.integers(0, n, int(clash.sum()))
        clash = labels[negatives] == lab
    triplets = folder / "triplets.csv"
    np.savetxt(triplets, np.column_stack([anchors, positives, negatives]), fmt="%d", delimiter=",",
               header="anchor,positive,negative", comments="")
    return pairs, triplets


def write_subset(source: Path, target: Path, labels: np.ndarray, rows: int) -> None:
    x = np.load(source, mmap_mode="r")
    np.save(target, np.ascontiguousarray(x[:rows]))
    np.save(target.with_name(target.stem + ".labels.npy"), labels[:rows])


def _status_mib(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon`` and ``RssFile`` of a process, in MiB (empty when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon", "RssFile") if k in fields}


def measure(command: list[str], scratch: Path) -> tuple[float, float, int, dict[str, int]]:
    """``(wall seconds, peak RSS MiB, exit code, sampled peaks)`` of one process under
    ``/usr/bin/time -f %M``. The peak RSS counts the pages of memory-mapped input files
    (clean page cache the kernel can drop), so the child's ``/proc/PID/status`` is also
    sampled every 50 ms for the peaks of its anonymous (``RssAnon``) and file-backed
    (``RssFile``) parts."""
    report = scratch / "time.txt"
    start = time.perf_counter()
    process = subprocess.Popen([TIME, "-f", "%M", "-o", str(report), *command],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, int] = {}
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    while process.poll() is None:
        try:
            child = int(children.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            child = None
        if child is not None:
            for key, value in _status_mib(child).items():
                peaks[key] = max(peaks.get(key, 0), value)
        time.sleep(0.05)
    stderr = process.stderr.read() if process.stderr else ""
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        print(f"    failed (exit {process.returncode}): {stderr.strip()[-500:]}", file=sys.stderr)
    lines = [line for line in report.read_text().splitlines() if line.strip()]
    peak_kib = int(lines[-1])  # with a non-zero exit, time writes "Command exited ..." first
    return elapsed, peak_kib / 1024, process.returncode, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=20_000)
    parser.add_argument("--latent", type=int, default=16, help="intrinsic dimension of the data")
    parser.add_argument("--pairs-count", type=int, default=100_000, help="pairs and triplets for loss")
    parser.add_argument("--eval-rows", type=int, default=200_000, help="rows of the eval subset")
    parser.add_argument("--folder", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--only", nargs="*", default=None, help="run only these cases (by name)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is missing: this bench measures peak RSS with GNU time "
                         "(Debian/Ubuntu: apt-get install time)")
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    embedkit = [exe] if Path(exe).exists() else [sys.executable, "-m", "embedkit.cli.main"]

    folder = args.folder or Path(tempfile.mkdtemp(prefix="embedkit-bench-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        emb = folder / "emb.npy"
        sub = folder / "subset.npy"
        start = time.perf_counter()
        labels = write_embeddings(emb, args.rows, args.dim, args.classes, args.latent, args.seed)
        pairs, triplets = write_items(folder, labels, args.pairs_count, args.seed)
        eval_rows = min(args.eval_rows, args.rows)
        write_subset(emb, sub, labels, eval_rows)
        file_mib = emb.stat().st_size / 2**20
        sub_mib = sub.stat().st_size / 2**20
        print(f"data: {args.rows:,} × {args.dim} float32 ({file_mib:,.0f} MiB), {args.classes:,} classes, "
              f"written in {time.perf_counter() - start:.1f} s to {folder}")
        print(f"cores: {os.cpu_count()}; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        cases = [
            ("start-up (--version)", ["--version"], emb),
            ("loss contrastive", ["loss", "--kind", "contrastive", "--pairs", str(pairs), str(emb), "--json"], emb),
            ("loss triplet", ["loss", "--kind", "triplet", "--triplets", str(triplets), str(emb), "--json"], emb),
            ("mine hard ivf", ["mine", "--strategy", "hard", "--index", "ivf", "-q", "--json",
                               "-o", str(folder / "hard.parquet"), str(emb)], emb),
            (f"eval ({eval_rows:,} rows)", ["eval", "-q", "--json", str(sub)], sub),
            ("inspect", ["inspect", "--json", str(emb)], emb),
            ("check nan_rows==0", ["check", "-r", "nan_rows==0", "--json", str(emb)], emb),
        ]
        print(f"\n{'command':<26}{'wall s':>9}{'peak MiB':>11}{'× file':>9}{'anon MiB':>10}{'file MiB':>10}  input")
        for name, command, source in cases:
            if args.only and not any(word in name for word in args.only):
                continue
            elapsed, peak, code, sampled = measure([*embedkit, *command], folder)
            size = file_mib if source == emb else sub_mib
            flag = "" if code == 0 else f"  (exit {code})"
            anon, mapped = sampled.get("RssAnon", -1), sampled.get("RssFile", -1)
            print(f"{name:<26}{elapsed:>9.1f}{peak:>11,.0f}{peak / size:>9.2f}{anon:>10,}{mapped:>10,}  {source.name} "
                  f"({size:,.0f} MiB){flag}", flush=True)
            print(f"    embedkit {' '.join(command)}", flush=True)
        print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        if not args.keep and args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
