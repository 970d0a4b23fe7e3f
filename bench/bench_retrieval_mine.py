"""`embedkit mine` retrieval mode against a bare FAISS flat search, at 2·10⁵ and 10⁶ documents.

Data: a corpus of DOCS × 128 float32 rows N(0, I); QUERIES queries N(0, I); each query gets 2
positives, corpus rows replaced by query + N(0, 0.5²) noise (so positives rank high, as in
retrieval data). Files are written to a temporary folder (NPY corpus and queries, TSV qrels).

For each corpus size, in one run of this script:

1. baseline: ``faiss.IndexFlatIP`` over L2-normalised copies of the corpus, searched with the
   normalised queries at k = 33 (normalising, adding and searching timed), in this process;
2. the whole command, in a child process under ``/usr/bin/time -v`` (peak RSS of that child):

       embedkit mine corpus.npy --queries queries.npy --qrels qrels.tsv \\
           --relative-margin 0.05 --range-max 30 --negatives 4 -o triplets.parquet -q --json

Prints both times, their ratio (goal <= 1.3) and the command's peak RSS (goal < 1.5 GiB).

    python bench/bench_retrieval_mine.py                                  # 200 000 and 1 000 000 docs
    python bench/bench_retrieval_mine.py --docs 20000 --queries 2000      # a quick run
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

DIM = 128


def make_data(folder: Path, docs: int, queries: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    corpus = np.lib.format.open_memmap(folder / "corpus.npy", mode="w+", dtype=np.float32, shape=(docs, DIM))
    for start in range(0, docs, 100_000):
        stop = min(docs, start + 100_000)
        corpus[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    q = rng.standard_normal((queries, DIM), dtype=np.float32)
    np.save(folder / "queries.npy", q)
    positives = rng.choice(docs, size=(queries, 2), replace=False)
    for j in range(2):
        corpus[positives[:, j]] = q + 0.5 * rng.standard_normal((queries, DIM), dtype=np.float32)
    corpus.flush()
    del corpus
    with open(folder / "qrels.tsv", "w") as handle:
        handle.write("query_id\tdoc_id\trelevance\n")
        for i in range(queries):
            handle.write(f"{i}\t{positives[i, 0]}\t1\n{i}\t{positives[i, 1]}\t1\n")


def faiss_baseline(folder: Path, k: int = 33) -> float:
    import faiss

    corpus = np.load(folder / "corpus.npy", mmap_mode="r")
    queries = np.load(folder / "queries.npy")
    started = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    for start in range(0, len(corpus), 100_000):
        block = np.array(corpus[start:start + 100_000], dtype=np.float32)
        faiss.normalize_L2(block)
        index.add(block)
    q = np.array(queries, dtype=np.float32)
    faiss.normalize_L2(q)
    index.search(q, k)
    seconds = time.perf_counter() - started
    del index
    return seconds


def run_command(folder: Path) -> tuple[float, dict, float]:
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    cmd = ["/usr/bin/time", "-v", exe, "mine", str(folder / "corpus.npy"), "--queries", str(folder / "queries.npy"),
           "--qrels", str(folder / "qrels.tsv"), "--relative-margin", "0.05", "--range-max", "30",
           "--negatives", "4", "-o", str(folder / "triplets.parquet"), "-q", "--json"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return seconds, json.loads(done.stdout), peak_kib / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="*", default=[200_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=20_000)
    args = parser.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}; queries {args.queries:,}, dim {DIM}")
    for docs in args.docs:
        folder = Path(tempfile.mkdtemp(prefix="bench_rmine_"))
        try:
            make_data(folder, docs, args.queries)
            command, payload, peak_gib = run_command(folder)
            floor = faiss_baseline(folder)
            print(f"\n{docs:,} docs × {DIM}, {args.queries:,} queries (2 positives each), "
                  "--relative-margin 0.05 --range-max 30 --negatives 4")
            print(f"  FAISS IndexFlatIP k=33 (normalise + add + search): {floor:8.2f} s")
            print(f"  embedkit mine (whole command, incl. reading):      {command:8.2f} s   "
                  f"ratio {command / floor:.2f}x (goal <= 1.3)")
            print(f"  peak RSS of the command: {peak_gib:.2f} GiB (goal < 1.5; the corpus is "
                  f"{docs * DIM * 4 / 1024**3:.2f} GiB)")
            print(f"  triplets {payload['triplets']:,}, queries short of 4: {payload['short_queries']:,}, "
                  f"removed by margin: {payload['removed'].get('relative_margin', 0):,}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
