"""Exact mining: every anchor against every row in BLAS tiles (:mod:`embedkit.mining.blocked`),
with the per-anchor band applied inside the scan, so no answer is missed because a
neighbour list was too short."""

from __future__ import annotations

import numpy as np

from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.mining.blocked import band_all, band_closest, nearest_negatives, pairs_below
from embedkit.mining.keys import Band, Prepared, TooMany, positive_bands
from embedkit.mining.positives import choose_positives
from embedkit.mining.recall import nearest_negative_recall, recall_sample
from embedkit.mining.result import MinedPart
from embedkit.mining.spec import MineSpec
from embedkit.pairs import class_sizes


def mine_exact(prep: Prepared, labels: np.ndarray, spec: MineSpec, rng: np.random.Generator,
               execution: Execution) -> MinedPart:
    n = len(labels)
    if spec.strategy == "within-margin":
        try:
            i, j, _ = pairs_below(prep, labels, spec.margin, max_items=spec.max_items, execution=execution)
        except TooMany as exc:
            raise too_many(spec, exc.count) from None
        touched = np.zeros(n, dtype=bool)
        touched[i] = True
        touched[j] = True
        return MinedPart(i, j, None, anchors=n, anchors_with_none=int(n - touched.sum()))
    anchors, positives = choose_positives(prep, labels, spec.positives or "random", spec.positives_count, rng,
                                          max_items=spec.max_items, budget_mib=execution.budget_mib)
    unique_anchors = np.unique(anchors)
    without = n - len(unique_anchors)
    if spec.strategy in ("hard", "batch-hard"):
        k = negatives_per_anchor(spec, labels, anchors)
        near_v, near_j, _, _ = nearest_negatives(prep, labels, unique_anchors, k, execution=execution)
        part = cross_triplets(anchors, positives, unique_anchors, near_j)
        part.anchors_without_positive = without
        if spec.check_recall:
            sample = recall_sample(unique_anchors, spec.check_recall, spec.seed)
            hits = nearest_negative_recall(prep, labels, unique_anchors, near_j, sample, k,
                                           execution=execution)
            part.recall_hits, part.recall_anchors = hits, len(sample)
        return part
    return mine_band(prep, labels, spec, anchors, positives, unique_anchors, without, execution)


def negatives_per_anchor(spec: MineSpec, labels: np.ndarray, anchors: np.ndarray) -> int:
    """``--negatives`` capped at the most negatives any anchor has (so ``2**63`` asks for all);
    refuses (before any search) when the triplets it yields would exceed ``--max-items``:
    ``Σ over (a, p) of min(K, rows − |class of a|)``."""
    sizes = class_sizes(labels)
    available = len(labels) - sizes
    k = int(min(spec.negatives, available.max()))
    count = int(np.minimum(available[labels[anchors]], k).sum())
    if count > spec.max_items:
        raise too_many(spec, count)
    return max(k, 1)


def cross_triplets(anchors: np.ndarray, positives: np.ndarray, unique_anchors: np.ndarray, near_j: np.ndarray) -> MinedPart:
    """Triplets: each anchor's positives × its found negatives."""
    where = np.searchsorted(unique_anchors, anchors)
    k = near_j.shape[1]
    a = np.repeat(anchors, k)
    p = np.repeat(positives, k)
    neg = near_j[where].ravel()
    keep = neg >= 0
    has = (near_j >= 0).any(axis=1)
    return MinedPart(a[keep], p[keep], neg[keep], anchors=len(unique_anchors),
                 anchors_with_none=int((~has).sum()), slots=len(anchors))


def mine_band(prep: Prepared, labels: np.ndarray, spec: MineSpec, anchors: np.ndarray, positives: np.ndarray,
               unique_anchors: np.ndarray, without: int, execution: Execution) -> MinedPart:
    band: Band = "farther" if spec.fallback == "tf-addons" else "semi-hard" if spec.strategy == "semi-hard" else "easy"
    slots, order = positive_bands(prep, anchors, positives, band, margin=spec.margin, squared=spec.squared)
    slot_anchor, slot_positive = anchors[order], positives[order]
    if spec.select == "all":
        try:
            slot, neg, _ = band_all(prep, labels, slots, max_items=spec.max_items, execution=execution)
        except TooMany as exc:
            raise too_many(spec, exc.count) from None
        filled = np.zeros(len(slot_anchor), dtype=bool)
        filled[slot] = True
        a, p, c = slot_anchor[slot], slot_positive[slot], neg
    else:
        _, best_j = band_closest(prep, labels, slots, execution=execution)
        filled = best_j >= 0
        best_j = best_j.copy()
        fallback_items = 0
        if spec.fallback != "none" and not filled.all():
            need = np.unique(slot_anchor[~filled])
            _, near_j, _, far_j = nearest_negatives(prep, labels, need, 1, track_far=spec.fallback == "tf-addons",
                                                    execution=execution)
            pick = far_j if spec.fallback == "tf-addons" else near_j[:, 0]
            missing = np.flatnonzero(~filled)
            best_j[missing] = pick[np.searchsorted(need, slot_anchor[missing])]
            fallback_items = int((best_j[missing] >= 0).sum())
        got = best_j >= 0
        a, p, c = slot_anchor[got], slot_positive[got], best_j[got]
    has_item = np.zeros(len(labels), dtype=bool)
    has_item[a] = True
    part = MinedPart(a, p, c, anchors=len(unique_anchors),
                 anchors_with_none=int(len(unique_anchors) - has_item[unique_anchors].sum()),
                 anchors_without_positive=without, slots=len(slot_anchor),
                 slots_with_none=int((~filled).sum()))
    if spec.select == "closest":
        part.fallback_items = fallback_items
    return part


_TOO_MANY_HINTS = {
    "hard": "lower --negatives, use fewer positives per anchor, or raise --max-items",
    "batch-hard": "use --batch-size, mine a subset, or raise --max-items",
    "within-margin": "lower --margin or raise --max-items",
}


def too_many(spec: MineSpec, count: int) -> OptionError:
    return OptionError(
        f"{spec.strategy} found more than {spec.max_items:,} items (at least {count:,}); "
        + _TOO_MANY_HINTS.get(spec.strategy, "lower --margin, use --select closest, or raise --max-items")
    )
