"""Ties in exact k-NN: within the neighbours returned, equal values rank by ascending row id
(FAISS's inner-product search returns them in descending id; embedkit reorders)."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.knn import exact_knn


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ties_rank_by_ascending_row_id(metric: str) -> None:
    rng = np.random.default_rng(3)
    directions = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)
    x = directions[rng.integers(0, 4, 40)]  # many exact duplicates: distances tie in groups
    found = exact_knn(x, 12, metric=metric)
    x64 = x.astype(np.float64)
    if metric == "cosine":
        unit = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        key = np.round(-(unit @ unit.T), 9)
    else:
        key = np.round(np.sqrt(((x64[:, None] - x64[None]) ** 2).sum(-1)), 9)
    for q in range(len(x)):
        others = np.array([j for j in range(len(x)) if j != q])
        kth = np.sort(key[q, others])[11]
        got = found.indices[q]
        assert (key[q, got] <= kth).all(), q  # the right neighbours (ties at the cut aside)
        pairs = list(zip(key[q, got], got))
        assert pairs == sorted(pairs), q  # ascending key, then ascending id
