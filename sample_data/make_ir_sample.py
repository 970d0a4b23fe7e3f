"""Regenerate sample_data/ir/ (the README's IR worked example): `python sample_data/make_ir_sample.py`.

Six 2-d unit document vectors at angles 0°, 20°, 45°, 70°, 90°, 180° (ids d1..d6), three
queries at 5°, 60°, 200° (ids q1..q3), and graded judgements: q1 judges d2 = 2 and d5 = 1,
q2 judges d3 = 2 and d4 = 1, q3 judges d1 = 0 only (no relevant document: skipped).
By cosine, q1 ranks d1 d2 d3 d4 d5 d6 and q2 ranks d4 d3 d5 d2 d1 d6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent / "ir"


def unit(degrees: list[float]) -> np.ndarray:
    radians = np.deg2rad(np.array(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def table(ids: list[str], vectors: np.ndarray) -> pa.Table:
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
    return pa.table({"id": ids, "embedding": flat})


def main() -> None:
    HERE.mkdir(exist_ok=True)
    pq.write_table(table([f"d{i}" for i in range(1, 7)], unit([0, 20, 45, 70, 90, 180])), HERE / "corpus.parquet")
    pq.write_table(table(["q1", "q2", "q3"], unit([5, 60, 200])), HERE / "queries.parquet")
    (HERE / "qrels.tsv").write_text("query_id\tdoc_id\trelevance\nq1\td2\t2\nq1\td5\t1\nq2\td3\t2\nq2\td4\t1\n"
                                    "q3\td1\t0\n")


if __name__ == "__main__":
    main()
