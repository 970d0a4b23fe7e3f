"""Approximate hard / batch-hard mining: a FAISS index (IVF or HNSW) proposes a few more
candidates than needed, re-ranked by exact distance; anchors it cannot complete are settled
by the exact scan; ``check_recall`` measures it against the exact scan."""

from __future__ import annotations

import numpy as np

from embedkit.engines import Engine, Progress
from embedkit.knn import (
    approximate_nearest_negatives,
    build_index,
    sharded_approximate_nearest_negatives,
)
from embedkit.mining.blocked import Prepared, nearest_negatives
from embedkit.mining.exact import cross_triplets, negatives_per_anchor
from embedkit.mining.positives import choose_positives
from embedkit.mining.recall import nearest_negative_recall, recall_sample
from embedkit.mining.result import MinedPart
from embedkit.mining.spec import MineSpec

#: Approximate search returns k + this many candidate negatives, re-ranked by exact distance.
RERANK_EXTRA = 3


def mine_approximate(prep: Prepared, embeddings: np.ndarray, labels: np.ndarray, spec: MineSpec, kind: str,
                      workers: int | None, budget_mib: float, progress: Progress | None,
                      engine: Engine | None = None) -> tuple[MinedPart, str]:
    n = len(labels)
    rng = np.random.default_rng(spec.seed)
    anchors, positives = choose_positives(prep, labels, spec.positives or "random", spec.positives_count, rng,
                                          max_items=spec.max_items, budget_mib=budget_mib)
    unique_anchors = np.unique(anchors)
    k = negatives_per_anchor(spec, labels, anchors)
    built = build_index(embeddings, kind, metric=spec.metric, nlist=spec.nlist, nprobe=spec.nprobe,
                        ef_search=spec.ef_search, seed=spec.seed, threads=workers, budget_mib=budget_mib,
                        progress=progress)
    # A few more candidates than k, re-ranked by exact distance: the index's codes are approximate.
    search_kw = {"metric": spec.metric, "candidates": k + RERANK_EXTRA, "budget_mib": budget_mib, "progress": progress}
    if engine is not None and engine.distributed:
        found, complete = sharded_approximate_nearest_negatives(engine, built, embeddings, labels, unique_anchors, k,
                                                                **search_kw)  # type: ignore[arg-type]
    else:
        found, complete = approximate_nearest_negatives(built, embeddings, labels, unique_anchors, k,
                                                        **search_kw)  # type: ignore[arg-type]
    rest = np.flatnonzero(~complete)
    description = built.description + f", {k + RERANK_EXTRA} candidates re-ranked exactly"
    if len(rest):
        # Anchors the index could not give k negatives: settle them exactly.
        _, exact_j, _, _ = nearest_negatives(prep, labels, unique_anchors[rest], k, budget_mib=budget_mib,
                                             workers=workers, engine=engine)
        found[rest] = -1
        found[rest, :k] = exact_j
        description += f"; {len(rest):,} anchors completed by exact scan"
    found = rerank_exactly(prep, unique_anchors, found)[:, :k]
    part = cross_triplets(anchors, positives, unique_anchors, found)
    part.anchors_without_positive = n - len(unique_anchors)
    if spec.check_recall:
        sample = recall_sample(unique_anchors, spec.check_recall, spec.seed)
        part.recall_hits = nearest_negative_recall(prep, labels, unique_anchors, found, sample, k, budget_mib=budget_mib,
                                   workers=workers, engine=engine)
        part.recall_anchors = len(sample)
    return part, description


def rerank_exactly(prep: Prepared, anchors: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Order each anchor's found negatives by exact key (ties to the smaller row)."""
    a = np.repeat(anchors, found.shape[1])
    flat = found.ravel()
    keys = np.full(len(flat), np.inf)
    ok = flat >= 0
    keys[ok] = prep.pair_keys(a[ok], flat[ok])
    keys = keys.reshape(found.shape)
    order = np.lexsort((np.where(found >= 0, found, np.iinfo(np.int64).max), keys), axis=1)
    return np.take_along_axis(found, order, axis=1)
