"""What mining returns: :class:`MineResult`, the per-pass :class:`MinedPart`, and the
sorted item columns with distances recomputed from the rows in float64."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embedkit.distances import Metric, is_similarity, paired_cosines, paired_distances
from embedkit.mining.spec import MineSpec, Strategy

QUANTILES = {"min": 0.0, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}


@dataclass(frozen=True)
class MineResult:
    """Mined items and how they were found.

    ``items`` holds ``anchor, positive, negative, d_ap, d_an`` (triplets) or ``i, j, y, d``
    (pairs, y = 0: all negative pairs), row indices into the embeddings, distances float64
    recomputed from the rows. ``anchors``: rows that could be anchors (a positive exists;
    every row for within-margin); ``anchors_with_none``: those with no item;
    ``slots``/``slots_with_none``: (anchor, positive) pairs searched, and those whose band
    held no negative (before any fallback).
    """

    strategy: Strategy
    definition: str
    items: dict[str, np.ndarray]
    rows: int
    anchors: int
    anchors_with_none: int
    anchors_without_positive: int
    slots: int
    slots_with_none: int
    fallback_items: int
    index: str
    index_description: str
    index_reason: str
    recall: float | None
    recall_anchors: int
    seconds: float
    metric: Metric
    params: dict[str, object]
    distances: dict[str, dict[str, float]] = field(default_factory=dict)
    batches: int | None = None

    @property
    def count(self) -> int:
        first = next(iter(self.items.values()), np.empty(0))
        return int(len(first))

    @property
    def kind(self) -> str:
        return "triplets" if "negative" in self.items else "pairs"


@dataclass
class MinedPart:
    """Items of one mining pass in local row numbers, and its counts."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None
    anchors: int = 0
    anchors_with_none: int = 0
    anchors_without_positive: int = 0
    slots: int = 0
    slots_with_none: int = 0
    fallback_items: int = 0
    recall_hits: float = 0.0
    recall_anchors: int = 0


def finish_items(embeddings: np.ndarray, labels: np.ndarray, spec: MineSpec, part: MinedPart) -> dict[str, np.ndarray]:
    """Sorted item columns with distances recomputed from the rows in float64."""
    if spec.triplets:
        assert part.c is not None
        order = np.lexsort((part.c, part.b, part.a))
        a, p, c = part.a[order], part.b[order], part.c[order]
        return {"anchor": a, "positive": p, "negative": c,
                "d_ap": item_distances(embeddings, a, p, spec.metric), "d_an": item_distances(embeddings, a, c, spec.metric)}
    order = np.lexsort((part.b, part.a))
    i, j = part.a[order], part.b[order]
    return {"i": i, "j": j, "y": np.zeros(len(i), dtype=np.int64), "d": item_distances(embeddings, i, j, spec.metric)}


def item_distances(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray, metric: Metric) -> np.ndarray:
    """Euclidean distances, or cosine distances ``1 − cos``, of row pairs, float64."""
    if is_similarity(metric):
        return 1.0 - paired_cosines(embeddings, first, second)
    return paired_distances(embeddings, first, second)


def distance_summary(items: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Quantiles (min, p05 … p95, max) and mean of each distance column and of d_an − d_ap."""
    columns = {"d_ap": items["d_ap"], "d_an": items["d_an"], "gap": items["d_an"] - items["d_ap"]} \
        if "d_an" in items else {"d": items["d"]}
    out: dict[str, dict[str, float]] = {}
    for name, values in columns.items():
        if len(values) == 0:
            continue
        qs = np.quantile(values, list(QUANTILES.values()))
        out[name] = {**{k: float(v) for k, v in zip(QUANTILES, qs)}, "mean": float(values.mean())}
    return out
