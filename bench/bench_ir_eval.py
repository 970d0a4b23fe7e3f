"""`embedkit eval --qrels` against a bare FAISS flat search of the same queries, in the same run.

Writes a synthetic retrieval set to a temporary folder: a ROWS × DIM float32 corpus (NPY,
written in blocks), QUERIES queries (each a noisy copy of one document, its relevant
document in a TREC qrels file, plus one random grade-1 document), then runs, each in its
own child process so that peak memory (ru_maxrss) is measured per run:

1. ``faiss``: load the corpus, L2-normalise, ``IndexFlatIP``, search the normalised
   queries with k = 100 (search time reported separately from the index build);
2. ``embedkit``: the command ``embedkit eval CORPUS --queries Q --qrels R --k 10 --k 100
   --json`` (cosine; the corpus memory-mapped), whole command timed.

Prints both times, the ratio embedkit / FAISS search (goal <= 1.3) and embedkit's peak
memory as a multiple of the corpus matrix (goal < 2).

    python bench/bench_ir_eval.py                           # 1 000 000 × 128, 10 000 queries
    python bench/bench_ir_eval.py --rows 100000 --queries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAISS_CHILD = r"""
import json, resource, sys, time
import faiss, numpy as np
corpus_path, queries_path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
corpus = np.load(corpus_path)
faiss.normalize_L2(corpus)
index = faiss.IndexFlatIP(corpus.shape[1])
index.add(corpus)
queries = np.ascontiguousarray(np.load(queries_path))
faiss.normalize_L2(queries)
built = time.perf_counter()
index.search(queries, k)
done = time.perf_counter()
print(json.dumps({"search": done - built, "total": done - start,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_data(folder: Path, rows: int, queries: int, dim: int, seed: int) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(seed)
    corpus_path = folder / "corpus.npy"
    corpus = np.lib.format.open_memmap(corpus_path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, 65536):
        stop = min(rows, start + 65536)
        corpus[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
    targets = rng.choice(rows, queries, replace=False)
    q = corpus[targets] + 0.5 * rng.standard_normal((queries, dim), dtype=np.float32)
    corpus.flush()
    del corpus
    queries_path = folder / "queries.npy"
    np.save(queries_path, q.astype(np.float32))
    extra = rng.integers(0, rows, queries)
    qrels_path = folder / "qrels.txt"
    with open(qrels_path, "w") as sink:
        for i, (t, e) in enumerate(zip(targets.tolist(), extra.tolist())):
            sink.write(f"{i} 0 {t} 2\n")
            if e != t:
                sink.write(f"{i} 0 {e} 1\n")
    return corpus_path, queries_path, qrels_path


def child_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", default=None, help="Where to write the data (default: a temporary folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        corpus, queries, qrels = write_data(folder, args.rows, args.queries, args.dim, args.seed)
        matrix_mib = args.rows * args.dim * 4 / 2**20
        print(f"corpus {args.rows:,} × {args.dim} float32 ({matrix_mib:,.0f} MiB), {args.queries:,} queries, "
              f"k = {args.k}, {os.cpu_count()} CPUs")

        embedkit = str(Path(sys.executable).with_name("embedkit"))
        command = [embedkit, "eval", str(corpus), "--queries", str(queries), "--qrels", str(qrels),
                   "--k", "10", "--k", str(args.k), "--json", "--quiet"]
        # embedkit first: RUSAGE_CHILDREN's maxrss is then its own peak.
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        rss_mib = child_rss_kib() / 1024
        payload = json.loads(out.stdout)
        faiss_out = subprocess.run([sys.executable, "-c", FAISS_CHILD, str(corpus), str(queries), str(args.k)],
                                   check=True, capture_output=True, text=True)
        base = json.loads(faiss_out.stdout)

    faiss_mib = base["maxrss_kib"] / 1024
    print(f"faiss IndexFlatIP search      {base['search']:8.2f} s   (load + normalise + add + search "
          f"{base['total']:.2f} s, peak {faiss_mib:,.0f} MiB)")
    print(f"embedkit eval --qrels         {seconds:8.2f} s   (whole command; ndcg_at_10 = {payload['ndcg_at_10']:.4f}, "
          f"recall_at_{args.k} = {payload[f'recall_at_{args.k}']:.4f})")
    print(f"ratio embedkit / faiss search {seconds / base['search']:8.2f}     (goal <= 1.3)")
    print(f"ratio embedkit / faiss total  {seconds / base['total']:8.2f}")
    print(f"peak memory embedkit          {rss_mib:8,.0f} MiB = {rss_mib / matrix_mib:.2f} × the corpus matrix "
          f"(goal < 2; FAISS: {faiss_mib / matrix_mib:.2f} ×)")


if __name__ == "__main__":
    main()
