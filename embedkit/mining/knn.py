"""The only FAISS wrapper: exact k-nearest-neighbour search in blocks of queries.

Conventions: inputs are converted to C-contiguous float32 *copies* (FAISS normalises
in place and wants float32); FAISS L2 distances are squared and are returned here as
Euclidean distances (square root taken); cosine search runs on L2-normalised copies
with the inner-product index and returns similarities. When queries are rows of the
reference set, the self match is removed *by id*, not by position, so duplicate rows and
ties cannot remove the wrong neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from embedkit.chunking import blocks, rows_per_block
from embedkit.distances import Metric, is_similarity
from embedkit.engine import Progress, available_cores
from embedkit.errors import OptionError


@dataclass(frozen=True)
class Neighbours:
    """``indices[q, r]`` is the r-th nearest reference row of query q (``-1`` = none);
    ``values`` are Euclidean distances (ascending) or cosine similarities (descending)."""

    indices: np.ndarray
    values: np.ndarray
    metric: Metric


def faiss_ready(embeddings: np.ndarray, *, metric: Metric) -> np.ndarray:
    """A float32 C-contiguous copy, L2-normalised for cosine (zero rows stay zero)."""
    out = np.array(embeddings, dtype=np.float32, order="C", copy=True)
    if metric == "cosine":
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
    return out


def flat_index(reference: np.ndarray, *, metric: Metric) -> faiss.Index:
    """An exact FAISS index over ``reference`` (already :func:`faiss_ready`)."""
    index = faiss.IndexFlatIP(reference.shape[1]) if is_similarity(metric) else faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    return index


def set_threads(threads: int | None = None) -> None:
    """FAISS's OpenMP thread count (default: all available cores)."""
    faiss.omp_set_num_threads(threads or available_cores())


def search_index(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    *,
    metric: Metric,
    query_ids: np.ndarray | None = None,
    budget_mib: float = 64.0,
    progress: Progress | None = None,
) -> Neighbours:
    """The ``k`` nearest reference rows of each query (already :func:`faiss_ready`).

    With ``query_ids`` (the queries' own row ids in the reference), ``k + 1`` are searched
    and the query's own id is dropped; if it is not among them (ties at distance 0 with
    duplicates), the last one is dropped instead.
    """
    if k < 1:
        raise OptionError(f"k must be >= 1; got {k}")
    total = index.ntotal
    want = min(k + (query_ids is not None), total)
    keep = min(k, total - (query_ids is not None))
    n = len(queries)
    indices = np.full((n, max(keep, 0)), -1, dtype=np.int64)
    values = np.full((n, max(keep, 0)), np.nan, dtype=np.float32)
    if keep <= 0 or n == 0:
        return Neighbours(indices, values, metric)
    step = rows_per_block(want * 12 + queries.shape[1] * 4, budget_mib)
    for start, stop in blocks(n, step):
        found_values, found = index.search(queries[start:stop], want)
        if query_ids is not None:
            found, found_values = _drop_self(found, found_values, query_ids[start:stop], keep)
        indices[start:stop] = found[:, :keep]
        values[start:stop] = found_values[:, :keep]
        if progress is not None:
            progress(stop, n)
    if not is_similarity(metric):
        np.maximum(values, 0.0, out=values)
        np.sqrt(values, out=values)
    return Neighbours(indices, values, metric)


def _drop_self(found: np.ndarray, values: np.ndarray, ids: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    is_self = found == ids[:, None]
    # Rows where self was not returned drop their last entry instead.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # Keep the first match only (FAISS never returns an id twice, but be exact).
    first = np.argmax(is_self, axis=1)
    mask = np.ones_like(found, dtype=bool)
    mask[np.arange(len(found)), first] = False
    width = found.shape[1] - 1
    return found[mask].reshape(-1, width)[:, :keep], values[mask].reshape(-1, width)[:, :keep]


def exact_knn(
    embeddings: np.ndarray,
    k: int,
    *,
    metric: Metric = "euclidean",
    queries: np.ndarray | None = None,
    threads: int | None = None,
    budget_mib: float = 64.0,
    progress: Progress | None = None,
) -> Neighbours:
    """Exact k-NN. Without ``queries`` every row is a query against all others (self excluded).

    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> exact_knn(x, 1).indices.ravel().tolist()
    [1, 0, 1]
    """
    set_threads(threads)
    reference = faiss_ready(embeddings, metric=metric)
    index = flat_index(reference, metric=metric)
    if queries is None:
        ids = np.arange(len(reference), dtype=np.int64)
        return search_index(index, reference, k, metric=metric, query_ids=ids, budget_mib=budget_mib, progress=progress)
    return search_index(index, faiss_ready(queries, metric=metric), k, metric=metric,
                        budget_mib=budget_mib, progress=progress)
