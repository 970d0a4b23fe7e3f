"""`embedkit eval` against one exact FAISS k-NN search of the same size, in the same process.

Makes N × D float32 clustered embeddings (C classes, unit-normalised), then:

1. times one exact search: ``IndexFlatL2`` over all rows, every row a query, k + 1
   neighbours (k = the search width eval uses: the largest class or the largest --k;
   + 1 because the query itself comes back first), index build included;
2. times :func:`embedkit.metrics.evaluate_retrieval` (the label k-NN of every row on the
   symmetric tiles: each pair multiplied once and fed to both rows' running top-k, for a
   large k filtered tiles feeding buffered selections; all four metrics);
3. prints both (best of --repeat, alternating which runs first), the ratio eval / search
   with PASS/FAIL against the goal (<= 0.7), the GEMM-only time of the same tiles
   (where the time goes) and the process's peak memory.

    python bench/bench_eval.py                       # 100 000 × 128, 1 000 classes
    python bench/bench_eval.py --rows 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_mine's GEMM-only timing

from embedkit.dataset import Dataset  # noqa: E402
from embedkit.engines import available_cores  # noqa: E402
from embedkit.metrics import evaluate_retrieval  # noqa: E402


def make_data(rows: int, dim: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    labels = rng.integers(0, classes, rows)
    x = centres[labels] + spread * rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def time_search(x: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    index.search(x, k + 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--k", default="1,5,10", help="recall_at_k values, as for `embedkit eval --k`")
    parser.add_argument("--metric", default="euclidean", choices=("euclidean", "cosine"))
    parser.add_argument("--repeat", type=int, default=1, help="Alternate search / eval this many times; best of each.")
    parser.add_argument("--spread", type=float, default=1.3, help="Within-class noise (class centres ~ N(0, 1)).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ks = tuple(int(v) for v in args.k.split(","))
    x, labels = make_data(args.rows, args.dim, args.classes, args.spread, args.seed)
    dataset = Dataset(embeddings=x, source="bench", labels=labels)
    faiss.omp_set_num_threads(available_cores())
    k = min(max(int(np.bincount(labels).max()), max(ks)), args.rows - 1)
    print(f"{args.rows:,} × {args.dim} float32, {args.classes:,} classes, k = {k}, "
          f"{available_cores()} cores, faiss {faiss.__version__}", flush=True)
    # Warm numba's cache and BLAS so neither side pays start-up costs in the timing.
    evaluate_retrieval(Dataset(embeddings=x[:3000], source="warm-up", labels=labels[:3000]), ks=ks, metric=args.metric)
    searches, evals = [], []
    for turn in range(args.repeat):
        # Alternate which runs first: on a shared machine the load drifts between the two.
        if turn % 2 == 0:
            searches.append(time_search(x, k))
        start = time.perf_counter()
        result = evaluate_retrieval(dataset, ks=ks, metric=args.metric)
        evals.append(time.perf_counter() - start)
        if turn % 2 == 1:
            searches.append(time_search(x, k))
        print(f"  search {searches[-1]:.2f} s   eval {evals[-1]:.2f} s   (load average {os.getloadavg()[0]:.1f})",
              flush=True)
    assert result.search_k == k
    best_search, best_eval = min(searches), min(evals)
    print(f"precision_at_1 {result.precision_at_1:.4f}, r_precision {result.r_precision:.4f}, "
          f"map_at_r {result.map_at_r:.4f}, " + ", ".join(f"recall_at_{k} {v:.4f}" for k, v in result.recall_at_k.items()))
    print(f"one exact FAISS search (IndexFlatL2, k + 1 = {k + 1}): {best_search:.2f} s")
    print(f"embedkit eval (library call):                    {best_eval:.2f} s")
    ratio = best_eval / best_search
    print(f"ratio eval / search: {ratio:.2f}   (goal <= {GOAL})  {'PASS' if ratio <= GOAL else 'FAIL'}")
    if args.metric == "euclidean":
        from bench_mine import gemm_only

        gemm = gemm_only(x, available_cores())
        print(f"where the time goes: the same symmetric tiles, GEMM only {gemm:.2f} s ({gemm / best_eval:.0%} of eval; "
              "the rest is the top-k kernels, merges and the metrics)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MiB (the matrix: {x.nbytes / 2**20:,.0f} MiB)")


GOAL = 0.7


if __name__ == "__main__":
    main()
