"""Regenerate sample_data/ deterministically: `python sample_data/make_sample_data.py`.

- seed/: the seed document's four faces (A1, A2 = Alice; B1, B2 = Bob) and its pairs.
- emb.npy + emb.labels.npy (and emb.parquet): 4,000 synthetic 128-d embeddings of 40
  classes, drawn the way real embedding sets look (low intrinsic dimension): class
  centres in a 16-d latent space, a few "look-alike" classes placed close to another
  class, per-class spread, a fixed random linear map to 128-d, small isotropic noise,
  then L2 normalisation (as most exported embeddings are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def write_seed(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    faces = np.array([[0.8, 0.2], [0.75, 0.25], [0.1, 0.9], [0.15, 0.85]], dtype=np.float64)
    ids = ["A1", "A2", "B1", "B2"]
    labels = ["alice", "alice", "bob", "bob"]
    np.save(folder / "faces.npy", faces)
    (folder / "faces.labels.txt").write_text("\n".join(labels) + "\n")
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(faces.ravel()), 2)
    pq.write_table(pa.table({"id": ids, "label": labels, "embedding": vectors}), folder / "faces.parquet")
    (folder / "pairs.csv").write_text("i,j,y\n0,1,1\n0,2,0\n1,3,0\n2,3,1\n")
    (folder / "a1_b1.csv").write_text("i,j,y\n0,2,0\n")


def make_clustered(rows: int = 4000, classes: int = 40, dim: int = 128, latent: int = 16, seed: int = 7):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, latent))
    # Every fifth class is a look-alike of the class before it: hard negatives exist.
    for c in range(1, classes, 5):
        centres[c] = centres[c - 1] + 0.35 * rng.standard_normal(latent)
    weights = 1.0 / np.arange(1, classes + 1) ** 0.6
    labels = rng.choice(classes, size=rows, p=weights / weights.sum())
    spread = rng.uniform(0.25, 0.6, size=classes)
    z = centres[labels] + spread[labels, None] * rng.standard_normal((rows, latent))
    mapping = rng.standard_normal((latent, dim)) / np.sqrt(latent)
    x = z @ mapping + 0.05 * rng.standard_normal((rows, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int64)


def main() -> None:
    write_seed(HERE / "seed")
    x, labels = make_clustered()
    np.save(HERE / "emb.npy", x)
    np.save(HERE / "emb.labels.npy", labels)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    table = pa.table({"id": [f"row{k:04d}" for k in range(len(x))], "label": labels, "embedding": vectors})
    pq.write_table(table, HERE / "emb.parquet", row_group_size=1000)


if __name__ == "__main__":
    main()
