"""Approximate ``hard`` mining at 10⁶ rows: the list-grouped IVF join against FAISS.

Data: the low-intrinsic-dimension matrix of ``bench_mine.py`` part 2 (C classes whose
centres and members live in an L-d latent space, mapped to D dims by a fixed random linear
map plus N(0, 0.01²) noise), generated once and cached as NPY in ``--cache-dir``.

In one run (local engine):

1. **floor**: an exact FAISS flat self-search of the same file (``IndexFlatL2``, k = 10),
   timed on ``--exact-queries`` rows and scaled to all rows (the search is linear in queries);
2. **mine**: the installed CLI end to end under ``/usr/bin/time -v``
   (``embedkit mine FILE --strategy hard --index ivf --check-recall R``): wall time, recall
   of the true nearest negative, peak RSS against the matrix size;
3. **comparison** at the same lists and nprobe (the same k-means centroids): the
   list-grouped join (:func:`embedkit.ivfjoin.ivf_nearest_negatives`) against FAISS
   ``IndexIVFFlat`` searched for nearest negatives the way 0.1 searched its IVF index
   (wide search past the anchor's class, then a label selector), and a bare IVFFlat
   k = 2 search (no labels: a lower bound for FAISS); time and recall of the true
   nearest negative on ``--check-recall`` anchors. FAISS is timed on ``--faiss-queries``
   anchors and scaled to all rows when that is fewer.

Acceptance (issue: approximate mining by list-grouped products), PASS/FAIL printed:
mine time <= 0.04 × the exact floor, recall >= 0.95, peak RSS < 2 × the matrix; and the
join must beat FAISS IVF at the same nlist/nprobe.

``--engine dask``: the same mining (library call) on a ``--workers`` LocalCluster with a
per-worker ``--memory-limit`` (default 0.9 × the matrix) against the local engine in the
same process: recall and the time ratio (issue: Dask beyond one host's memory).

    python bench/bench_approximate.py                          # 1 000 000 rows (~10 min)
    python bench/bench_approximate.py --rows 100000            # a quick run
    python bench/bench_approximate.py --rows 200000 --engine dask --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mine import low_dimensional  # noqa: E402  (the one data generator)


def cached_data(args: argparse.Namespace) -> tuple[Path, Path]:
    """The matrix and labels files, generated once per shape and seed."""
    folder = Path(args.cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"low_dim_{args.rows}x{args.dim}_l{args.latent}_c{args.classes}_s{args.seed}"
    path, labels = stem.with_suffix(".npy"), Path(f"{stem}.labels.npy")
    if not (path.exists() and labels.exists()):
        started = time.perf_counter()
        x, y = low_dimensional(args.rows, args.dim, args.latent, args.classes, args.seed)
        np.save(labels, y)
        partial = Path(f"{stem}.partial.npy")
        np.save(partial, x)
        os.replace(partial, path)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    return path, labels


def exact_floor(x: np.ndarray, args: argparse.Namespace) -> float:
    """Seconds of an exact FAISS flat k=10 self-search of all rows, from ``--exact-queries``."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    count = min(args.exact_queries, len(x))
    rows = np.sort(np.random.default_rng(1).choice(len(x), count, replace=False))
    index = faiss.IndexFlatL2(x.shape[1])
    started = time.perf_counter()
    index.add(np.ascontiguousarray(x, dtype=np.float32))
    added = time.perf_counter() - started
    best = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        index.search(np.ascontiguousarray(x[rows], dtype=np.float32), 11)
        best = min(best, time.perf_counter() - started)
    del index
    return added + best * len(x) / count


def mine_command(path: Path, args: argparse.Namespace, folder: Path) -> dict[str, float | str]:
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    command = [exe, "mine", str(path), "--strategy", "hard", "--index", "ivf", "--check-recall",
               str(args.check_recall), "-o", str(folder / "hard.parquet"), "--json", "-q", "--workers",
               str(args.threads)]
    if args.nlist:
        command += ["--nlist", str(args.nlist)]
    if args.nprobe:
        command += ["--nprobe", str(args.nprobe)]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    done = subprocess.run(timer + command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr[-2000:]}")
    payload = json.loads(done.stdout)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {"seconds": elapsed, "recall": payload["recall"]["value"], "anchors": payload["recall"]["anchors"],
            "peak_mib": int(peak.group(1)) / 1024 if peak else float("nan"),
            "index": payload["index"]["description"], "items": payload["items"],
            "command": " ".join(["embedkit"] + command[1:])}


def hit_rate(prep, labels: np.ndarray, sample: np.ndarray, found: np.ndarray, truth: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Share of sampled anchors whose best found negative is at the true nearest negative's
    key (within the recall check's relative 1e-5)."""
    from embedkit.mining.recall import RECALL_TIE

    ok = found >= 0
    keys = np.full(len(sample), np.inf)
    keys[ok] = prep.pair_keys(sample[ok], found[ok])
    return float((keys <= truth * (1 + RECALL_TIE) + RECALL_TIE).mean())


def comparison(x: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """The join and FAISS IVFFlat at the same centroids and nprobe; times and recall."""
    import faiss

    from embedkit.execution import Execution
    from embedkit.ivfjoin import ivf_nearest_negatives, train_centroids
    from embedkit.knn import (
        ApproxIndex,
        approximate_nearest_negatives,
        default_nprobe,
        ivf_lists,
        set_threads,
    )
    from embedkit.mining.approximate import RERANK_EXTRA, rerank_exactly
    from embedkit.mining.blocked import nearest_negatives
    from embedkit.mining.keys import prepare

    n, dim = x.shape
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    prep = prepare(x, "euclidean")
    nlist = args.nlist or ivf_lists(n)
    nprobe = args.nprobe or default_nprobe(nlist)
    started = time.perf_counter()
    centroids = train_centroids(prep, nlist, seed=args.seed, threads=args.threads)
    train = time.perf_counter() - started
    anchors = np.arange(n)
    sample = np.sort(np.random.default_rng(2).choice(n, min(args.check_recall, n), replace=False))
    truth, _, _, _ = nearest_negatives(prep, codes, sample, 1, execution=Execution.local(args.threads))
    truth = truth[:, 0]
    out: dict[str, float] = {"nlist": nlist, "nprobe": nprobe, "train": train}

    started = time.perf_counter()
    join = ivf_nearest_negatives(prep, codes, anchors, 1, nlist=nlist, nprobe=nprobe, candidates=1 + RERANK_EXTRA,
                                 execution=Execution.local(args.threads), centroids=centroids)
    out["join"] = time.perf_counter() - started
    found = rerank_exactly(prep, anchors[sample], join.rows[sample])[:, 0]
    out["join_recall"] = hit_rate(prep, codes, sample, found, truth)
    out["pairs"] = join.pairs
    out.update({f"join_{name}": value for name, value in join.seconds})
    del join

    set_threads(args.threads)
    started = time.perf_counter()
    quantizer = faiss.IndexFlatL2(dim)
    quantizer.add(np.ascontiguousarray(centroids + prep.centre, dtype=np.float32))
    ivf = faiss.IndexIVFFlat(quantizer, dim, int(nlist), faiss.METRIC_L2)
    ivf.nprobe = int(nprobe)
    step = 65536
    for a in range(0, n, step):
        ivf.add(np.ascontiguousarray(x[a:a + step], dtype=np.float32))
    out["faiss_add"] = time.perf_counter() - started
    queries = anchors if args.faiss_queries <= 0 or args.faiss_queries >= n else np.sort(
        np.union1d(sample, np.random.default_rng(3).choice(n, args.faiss_queries - len(sample), replace=False)))
    scale = n / len(queries)
    built = ApproxIndex(ivf, "ivf", f"IVF{nlist},Flat nprobe={nprobe}")
    started = time.perf_counter()
    found_f, _ = approximate_nearest_negatives(built, x, codes, queries, 1, candidates=1 + RERANK_EXTRA)
    out["faiss_negatives"] = (time.perf_counter() - started) * scale + out["faiss_add"]
    where = np.searchsorted(queries, sample)
    found_f = rerank_exactly(prep, sample, found_f[where])[:, 0]
    out["faiss_recall"] = hit_rate(prep, codes, sample, found_f, truth)
    started = time.perf_counter()
    step = 16384
    for a in range(0, len(queries), step):
        ivf.search(np.ascontiguousarray(x[queries[a:a + step]], dtype=np.float32), 2)
    out["faiss_bare"] = (time.perf_counter() - started) * scale + out["faiss_add"]
    out["faiss_queries"] = len(queries)
    del ivf, quantizer
    return out


def dask_mode(path: Path, labels_path: Path, args: argparse.Namespace) -> None:
    from distributed import LocalCluster

    from embedkit.engines.dask import DaskEngine
    from embedkit.execution import Execution
    from embedkit.mining.strategies import MineSpec, mine

    x = np.load(path, mmap_mode="r")
    labels = np.load(labels_path)
    matrix = x.nbytes
    limit = args.memory_limit or int(0.9 * matrix)
    spec = MineSpec("hard", index="ivf", check_recall=args.check_recall, nlist=args.nlist, nprobe=args.nprobe)
    print(f"dask mode: {len(x):,} x {x.shape[1]} ({matrix / 2**20:,.0f} MiB), {args.workers} workers x 1 thread, "
          f"memory limit {limit / 2**20:,.0f} MiB per worker ({limit / matrix:.2f} x the matrix)")
    started = time.perf_counter()
    local = mine(x, labels, spec, execution=Execution.local(args.workers))
    local_s = time.perf_counter() - started
    print(f"  local engine ({args.workers} threads)  {local_s:8.2f} s   recall {local.recall:.4f}")
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, memory_limit=limit,
                           dashboard_address=":0")
    engine = DaskEngine(cluster.scheduler_address)
    try:
        started = time.perf_counter()
        remote = mine(x, labels, spec, execution=Execution(engine))
        remote_s = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - a bench reports the failure and goes on
        print(f"  dask: FAILED ({type(exc).__name__}: {str(exc)[:300]})")
        print("  acceptance: completes under a per-worker limit below the matrix   FAIL")
        return
    finally:
        engine.close()
        cluster.close()
    same = all(np.array_equal(local.items[c], remote.items[c]) for c in local.items)
    ok = remote.recall is not None and remote.recall >= 0.95 and limit < matrix
    print(f"  dask engine                  {remote_s:8.2f} s   recall {remote.recall:.4f}   "
          f"time ratio dask/local {remote_s / local_s:5.2f}   items identical to local: {same}")
    print(f"  acceptance: completes under a per-worker limit below the matrix, recall >= 0.95   "
          f"{'PASS' if ok else 'FAIL'}{'' if limit < matrix else ' (the limit is not below the matrix)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--latent", type=int, default=16, help="intrinsic dimension")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nlist", type=int, default=None, help="lists (default: the library's)")
    parser.add_argument("--nprobe", type=int, default=None, help="lists probed (default: the library's)")
    parser.add_argument("--check-recall", type=int, default=1000)
    parser.add_argument("--exact-queries", type=int, default=10_000)
    parser.add_argument("--faiss-queries", type=int, default=100_000, help="0: every row")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=1, help="best of N for the floor")
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "embedkit-bench-approximate"))
    parser.add_argument("--skip-comparison", action="store_true")
    parser.add_argument("--engine", choices=["local", "dask"], default="local")
    parser.add_argument("--workers", type=int, default=2, help="dask workers")
    parser.add_argument("--memory-limit", type=int, default=0, help="bytes per dask worker (default 0.9 x matrix)")
    args = parser.parse_args()
    path, labels_path = cached_data(args)
    if args.engine == "dask":
        dask_mode(path, labels_path, args)
        return
    x = np.load(path, mmap_mode="r")
    matrix_mib = x.nbytes / 2**20
    print(f"{args.rows:,} x {args.dim} float32 ({matrix_mib:,.0f} MiB), {args.classes:,} classes in a "
          f"{args.latent}-d latent; {args.threads} threads, {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    floor = exact_floor(x, args)
    print(f"  floor: exact FAISS IndexFlatL2 k=10 self-search, all rows (from {min(args.exact_queries, args.rows):,} "
          f"queries)  {floor:9.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        run = mine_command(path, args, Path(tmp))
    ratio = float(run["seconds"]) / floor
    peak = float(run["peak_mib"]) / matrix_mib
    print(f"  command: {run['command']}")
    print(f"  index: {run['index']}")
    print(f"  mine --index ivf (whole command)  {run['seconds']:8.1f} s   ratio to the floor {ratio:.4f}   "
          f"(goal <= 0.04)  {'PASS' if ratio <= 0.04 else 'FAIL'}")
    print(f"  recall of the true nearest negative ({run['anchors']:,} anchors)  {run['recall']:.4f}   "
          f"(goal >= 0.95)  {'PASS' if float(run['recall']) >= 0.95 else 'FAIL'}")
    print(f"  peak RSS {run['peak_mib']:,.0f} MiB = {peak:.2f} x the matrix   (goal < 2)  {'PASS' if peak < 2 else 'FAIL'}")
    if args.skip_comparison:
        return
    c = comparison(x, np.load(labels_path), args)
    scaled = "" if c["faiss_queries"] >= args.rows else f" (timed on {int(c['faiss_queries']):,} anchors, scaled)"
    print(f"  comparison at nlist={int(c['nlist']):,}, nprobe={int(c['nprobe'])}, the same k-means centroids "
          f"(trained in {c['train']:.1f} s, not counted); nearest negative of every row:")
    print(f"    list-grouped join (GEMM per list)        {c['join']:8.1f} s   recall {c['join_recall']:.4f}   "
          f"{c['pairs'] / 1e9:.2f} G pairs (assign rows to lists {c['join_assign']:.1f} s, "
          f"copy in list order {c['join_sort']:.1f} s, list products {c['join_join']:.1f} s)")
    print(f"    FAISS IndexIVFFlat, negatives as 0.1     {c['faiss_negatives']:8.1f} s   recall {c['faiss_recall']:.4f}"
          f"{scaled}")
    print(f"    FAISS IndexIVFFlat, bare k=2 (no labels) {c['faiss_bare']:8.1f} s{scaled}")
    beats = c["join"] < min(c["faiss_negatives"], c["faiss_bare"])
    print(f"    join / FAISS negatives {c['join'] / c['faiss_negatives']:.3f}   join / FAISS bare {c['join'] / c['faiss_bare']:.3f}"
          f"   join beats FAISS IVF  {'PASS' if beats else 'FAIL'}")


if __name__ == "__main__":
    main()
