"""Recall of a nearest-negative search against the exact scan, on a sample of anchors."""

from __future__ import annotations

import numpy as np

from embedkit.execution import Execution
from embedkit.mining.blocked import nearest_negatives
from embedkit.mining.keys import Prepared

#: Relative tolerance under which two squared distances count as a tie in the recall check.
RECALL_TIE = 1e-5


def recall_sample(anchors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` anchors drawn without replacement (positions into ``anchors``), sorted."""
    rng = np.random.default_rng([seed, 7919])
    take = min(count, len(anchors))
    return np.sort(rng.choice(len(anchors), take, replace=False))


def nearest_negative_recall(prep: Prepared, labels: np.ndarray, anchors: np.ndarray, found: np.ndarray, sample: np.ndarray,
            k: int, *, execution: Execution = Execution()) -> float:
    """Sum over sampled anchors of (found negatives at least as close as the true k-th) / k.

    Both sides' keys come from the same expansion, so an exact search scores exactly 1;
    ties at the k-th distance (within a relative 1e-5 of its squared value) count as hits.
    """
    ids = anchors[sample]
    true_v, true_j, _, _ = nearest_negatives(prep, labels, ids, k, execution=execution)
    hits = 0.0
    for row, anchor in enumerate(ids):
        truth = true_j[row][true_j[row] >= 0]
        if len(truth) == 0:
            hits += 1.0
            continue
        # Ties: keys within a relative 1e-5 (float32 rounding of the expansion) are equal.
        kth = prep.pair_keys(np.full(len(truth), anchor), truth).max() * (1 + RECALL_TIE) + RECALL_TIE
        got = found[sample[row]]
        got = got[got >= 0]
        keys = prep.pair_keys(np.full(len(got), anchor), got) if len(got) else np.empty(0)
        hits += min(1.0, float((keys <= kth).sum()) / len(truth))
    return hits
