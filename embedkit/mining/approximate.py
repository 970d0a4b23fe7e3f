"""Approximate hard / batch-hard mining (each anchor's ``k`` nearest negatives).

``ivf``: the list-grouped IVF self-join of :mod:`embedkit.ivfjoin` (k-means lists, then
per list the probing anchors × its members as one GEMM, label-masked running top lists);
``hnsw``: a FAISS HNSW index searched per anchor. Either proposes a few more candidates
than needed, re-ranked by exact per-pair keys; anchors with fewer than ``k`` negatives
found are settled by the exact blocked scan; ``check_recall`` measures the result against
the exact scan on a sample of anchors."""

from __future__ import annotations

import numpy as np

from embedkit.execution import Execution
from embedkit.ivflists import release_mapped_pages
from embedkit.knn import (
    approximate_nearest_negatives,
    build_index,
    default_nprobe,
    ivf_lists,
    sharded_approximate_nearest_negatives,
)
from embedkit.mining.blocked import nearest_negatives
from embedkit.mining.exact import cross_triplets, negatives_per_anchor
from embedkit.mining.keys import Prepared
from embedkit.mining.positives import choose_positives
from embedkit.mining.recall import nearest_negative_recall, recall_sample
from embedkit.mining.result import MinedPart
from embedkit.mining.spec import MineSpec

#: Approximate search returns k + this many candidate negatives, re-ranked by exact distance.
RERANK_EXTRA = 3


def mine_approximate(prep: Prepared, embeddings: np.ndarray, labels: np.ndarray, spec: MineSpec, kind: str,
                     execution: Execution) -> tuple[MinedPart, str]:
    n = len(labels)
    rng = np.random.default_rng(spec.seed)
    anchors, positives = choose_positives(prep, labels, spec.positives or "random", spec.positives_count, rng,
                                          max_items=spec.max_items, budget_mib=execution.budget_mib)
    unique_anchors = np.unique(anchors)
    k = negatives_per_anchor(spec, labels, anchors)
    release_mapped_pages(prep.x)  # what reading the whole file (centring, positives) left resident
    if kind == "ivf":  # the join's candidates come re-ranked by exact per-pair keys
        found, complete, description = _ivf_join(prep, labels, unique_anchors, k, spec, execution)
    else:
        found, complete, description = _faiss_search(prep, embeddings, labels, unique_anchors, k, spec, kind,
                                                     execution)
        found = rerank_exactly(prep, unique_anchors, found)
    description += f", {k + RERANK_EXTRA} candidates re-ranked exactly"
    rest = np.flatnonzero(~complete)
    if len(rest):
        # Anchors the index could not give k negatives: settle them exactly.
        _, exact_j, _, _ = nearest_negatives(prep, labels, unique_anchors[rest], k, execution=execution.quiet())
        found[rest] = -1
        found[rest, :k] = exact_j
        found[rest] = rerank_exactly(prep, unique_anchors[rest], found[rest])
        description += f"; {len(rest):,} anchors completed by exact scan"
    found = found[:, :k].astype(np.int64)
    part = cross_triplets(anchors, positives, unique_anchors, found)
    part.anchors_without_positive = n - len(unique_anchors)
    if spec.check_recall:
        sample = recall_sample(unique_anchors, spec.check_recall, spec.seed)
        part.recall_hits = nearest_negative_recall(prep, labels, unique_anchors, found, sample, k,
                                                   execution=execution.quiet())
        part.recall_anchors = len(sample)
        release_mapped_pages(prep.x)
    return part, description


def _ivf_join(prep: Prepared, labels: np.ndarray, anchors: np.ndarray, k: int, spec: MineSpec,
              execution: Execution) -> tuple[np.ndarray, np.ndarray, str]:
    """The list-grouped IVF join (lists and probes default as FAISS IVF's did here)."""
    from embedkit.ivfjoin import ivf_nearest_negatives

    n = len(labels)
    nlist = int(max(1, min(spec.nlist or ivf_lists(n), n)))
    nprobe = int(min(spec.nprobe or default_nprobe(nlist), nlist))
    notes = []
    if spec.nlist and spec.nlist > n:
        notes.append(f"nlist capped at {n:,} rows; asked {spec.nlist:,}")
    if spec.nprobe and spec.nprobe > nlist:
        notes.append(f"nprobe capped at {nlist:,} lists; asked {spec.nprobe:,}")
    join = ivf_nearest_negatives(prep, labels, anchors, k, nlist=nlist, nprobe=nprobe, candidates=k + RERANK_EXTRA,
                                 seed=spec.seed, execution=execution)
    description = join.description + (f" ({'; '.join(notes)})" if notes else "")
    return join.rows, join.complete, description


def _faiss_search(prep: Prepared, embeddings: np.ndarray, labels: np.ndarray, anchors: np.ndarray, k: int,
                  spec: MineSpec, kind: str, execution: Execution) -> tuple[np.ndarray, np.ndarray, str]:
    """A FAISS index (HNSW) searched per anchor, label-filtered."""
    built = build_index(embeddings, kind, metric=spec.metric, nlist=spec.nlist, nprobe=spec.nprobe,
                        ef_search=spec.ef_search, seed=spec.seed, threads=execution.threads,
                        budget_mib=execution.budget_mib, progress=execution.progress)
    # A few more candidates than k, re-ranked by exact distance: the index's codes are approximate.
    search_kw = {"metric": spec.metric, "candidates": k + RERANK_EXTRA, "budget_mib": execution.budget_mib,
                 "progress": execution.progress}
    if execution.engine.distributed:
        found, complete = sharded_approximate_nearest_negatives(execution.engine, built, embeddings, labels, anchors, k,
                                                                **search_kw)  # type: ignore[arg-type]
    else:
        found, complete = approximate_nearest_negatives(built, embeddings, labels, anchors, k,
                                                        **search_kw)  # type: ignore[arg-type]
    return found, complete, built.description


def rerank_exactly(prep: Prepared, anchors: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Order each anchor's found negatives by exact key (ties to the smaller row); in
    chunks of anchors, so the pair rows gathered stay small."""
    out = np.empty_like(found)
    width = max(1, found.shape[1])
    step = max(1, RERANK_PAIRS // width)
    for start in range(0, len(anchors), step):
        part = found[start:start + step]
        a = np.repeat(anchors[start:start + step], part.shape[1])
        flat = part.ravel()
        keys = np.full(len(flat), np.inf)
        ok = flat >= 0
        keys[ok] = prep.pair_keys(a[ok], flat[ok])
        keys = keys.reshape(part.shape)
        order = np.lexsort((np.where(part >= 0, part, np.iinfo(np.int64).max), keys), axis=1)
        out[start:start + step] = np.take_along_axis(part, order, axis=1)
        release_mapped_pages(prep.x)
    return out


#: Pairs re-ranked per chunk (their rows are gathered twice: 2 × 2 048 × dim values; the
#: mapped pages are released after each chunk).
RERANK_PAIRS = 2048
