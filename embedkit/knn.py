"""The only FAISS wrapper: exact k-nearest-neighbour search in blocks of queries.

Conventions: inputs are converted to C-contiguous float32 *copies* (FAISS normalises
in place and wants float32); FAISS L2 distances are squared and are returned here as
Euclidean distances (square root taken); cosine search runs on L2-normalised copies
with the inner-product index and returns similarities. When queries are rows of the
reference set, the self match is removed *by id*, not by position, so duplicate rows and
ties cannot remove the wrong neighbour.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import faiss
import numpy as np

from embedkit.chunking import blocks, rows_per_block
from embedkit.distances import Metric, is_similarity
from embedkit.engines import Engine, Progress, available_cores
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


#: Most worker threads used, whatever --workers asks (FAISS takes a C int; more threads than
#: this only add overhead on any machine this runs on).
MAX_WORKERS = 1024


def capped_workers(workers: int | None) -> int:
    """``workers`` (default: all available cores), at most :data:`MAX_WORKERS`."""
    return int(min(workers or available_cores(), MAX_WORKERS))


def set_threads(threads: int | None = None) -> None:
    """FAISS's OpenMP thread count (default: all available cores)."""
    faiss.omp_set_num_threads(capped_workers(threads))


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
        found, found_values = _ties_by_id(found, found_values, metric)
        indices[start:stop] = found[:, :keep]
        values[start:stop] = found_values[:, :keep]
        if progress is not None:
            progress(stop, n)
    if not is_similarity(metric):
        np.maximum(values, 0.0, out=values)
        np.sqrt(values, out=values)
    return Neighbours(indices, values, metric)


def _ties_by_id(found: np.ndarray, values: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """Each row ordered by (distance ascending | similarity descending, row id ascending).

    FAISS's flat L2 search already breaks ties by ascending id, its inner-product search by
    descending id; one order for both metrics (missing ``-1`` entries last)."""
    key = -values if is_similarity(metric) else values
    key = np.where(found >= 0, key, np.inf)
    ids = np.where(found >= 0, found, np.iinfo(np.int64).max)
    order = np.lexsort((ids, key), axis=1)
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(values, order, axis=1)


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


# -- approximate indexes ---------------------------------------------------------------------

from embedkit.choices import IndexKind

INDEX_KINDS: tuple[IndexKind, ...] = ("exact", "hnsw", "ivf", "auto")
#: ``auto`` searches exactly up to this many rows (exact work grows as n², ~20 s at 10⁵ on 2 cores).
AUTO_EXACT_MAX_ROWS = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
DEFAULT_EF_SEARCH = 64
IVF_TRAIN_PER_LIST = 39  # FAISS's own minimum training points per centroid
IVF_KMEANS_ITERATIONS = 10


def ivf_lists(rows: int) -> int:
    """Default IVF list count: about ``4·√n``, at least 1 and at most ``n / 39``.

    >>> ivf_lists(1_000_000)
    4000
    """
    return int(max(1, min(round(4 * math.sqrt(rows)), rows // IVF_TRAIN_PER_LIST)))


def default_nprobe(nlist: int) -> int:
    """Lists probed by default: 1/200 of them, at least 32.

    On the 10⁶-row low-intrinsic-dimension benchmark the share of anchors whose true nearest
    negative lies in a probed list depends on nprobe far more than on nlist (1 000 to 4 000
    lists): about 0.93 at 20 probes, 0.95 at 24, 0.96-0.97 at 32.

    >>> default_nprobe(4000)
    32
    """
    return int(min(nlist, max(32, nlist // 200)))


@dataclass(frozen=True)
class ApproxIndex:
    """A built FAISS index and how it was made (for the summary)."""

    index: faiss.Index
    kind: str
    description: str


def _ready_block(block: np.ndarray, metric: Metric) -> np.ndarray:
    return faiss_ready(block, metric=metric)


def build_index(
    embeddings: np.ndarray,
    kind: str,
    *,
    metric: Metric = "euclidean",
    nlist: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    budget_mib: float = 64.0,
    progress: Progress | None = None,
) -> ApproxIndex:
    """An HNSW (``HNSW{M},Flat``) or IVF (``IVF{nlist},SQ8``) index over ``embeddings``.

    The IVF index stores 8-bit scalar-quantised codes (a quarter of the float32 matrix, and
    faster to scan); callers re-rank its candidates by exact distance.

    Rows are converted and added in blocks (no float32 copy of the whole matrix besides the
    index's own storage). IVF trains on ``39·nlist`` rows (FAISS's minimum) sampled with ``seed``.
    """
    set_threads(threads)
    n, dim = embeddings.shape
    faiss_metric = faiss.METRIC_INNER_PRODUCT if is_similarity(metric) else faiss.METRIC_L2
    notes: list[str] = []
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss_metric)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = _capped("efSearch", ef_search or DEFAULT_EF_SEARCH, max(1, n), "rows", notes)
        description = f"HNSW{HNSW_M},Flat efConstruction={HNSW_EF_CONSTRUCTION} efSearch={index.hnsw.efSearch}"
    elif kind == "ivf":
        # More lists than rows cannot be trained; a list per row is the most the data allows.
        lists = _capped("nlist", nlist or ivf_lists(n), max(1, n), "rows", notes)
        quantizer = faiss.IndexFlatIP(dim) if is_similarity(metric) else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss_metric)
        index.cp.niter = IVF_KMEANS_ITERATIONS
        sample = min(n, lists * IVF_TRAIN_PER_LIST)
        rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
        index.train(_ready_block(embeddings[rows], metric))
        index.nprobe = _capped("nprobe", nprobe or default_nprobe(lists), lists, "lists", notes)
        description = f"IVF{lists},SQ8 nprobe={index.nprobe}"
    else:
        raise OptionError(f"unknown approximate index {kind!r}; expected hnsw or ivf")
    step = rows_per_block(dim * 4 * 2, budget_mib)
    for start, stop in blocks(n, step):
        index.add(_ready_block(embeddings[start:stop], metric))
        if progress is not None:
            progress(stop, 2 * n)
    if notes:
        description += f" ({'; '.join(notes)})"
    return ApproxIndex(index, kind, description)


def _capped(name: str, value: int, limit: int, unit: str, notes: list[str]) -> int:
    """``value`` capped at ``limit`` (what the data allows), with a note when it was."""
    if value <= limit:
        return int(value)
    notes.append(f"{name} capped at {limit:,} {unit}; asked {value:,}")
    return int(limit)


def _search_params(index: ApproxIndex, k: int, selector: faiss.IDSelector | None) -> faiss.SearchParameters:
    """Search parameters carrying the index's own width (and at least ``k``) and a selector."""
    if index.kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(index.index.hnsw.efSearch, k))
    return faiss.SearchParametersIVF(sel=selector, nprobe=index.index.nprobe)


#: Widest unfiltered search: anchors whose class has at most this many rows (less the
#: candidates) are searched in bulk; larger classes go through an ID selector.
BULK_WIDTH = 256


def approximate_nearest_negatives(
    index: ApproxIndex,
    embeddings: np.ndarray,
    labels: np.ndarray,
    anchors: np.ndarray,
    k: int,
    *,
    metric: Metric = "euclidean",
    candidates: int | None = None,
    width: int | None = None,
    budget_mib: float = 64.0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest negatives (other label, never the anchor itself) that the index finds.

    A negative can lie past the anchor's whole class, so a plain k-NN list may hold none.
    Anchors of small classes (``class size + candidates <= BULK_WIDTH``) are searched in bulk
    with enough neighbours to reach past their class; the others (and bulk anchors whose
    list still held too few negatives) are searched
    class by class with an ``IDSelectorNot(IDSelectorBatch(class rows))`` so the index only
    returns rows of other labels (the anchor itself included in the excluded class).
    Returns ``(rows, complete)``: ``rows[m, r]``, up to ``candidates`` (default ``k``)
    negatives in the index's order (``-1`` = not found; re-rank them by exact distance and
    keep ``k``), and per anchor whether ``k`` were found; settle incomplete anchors exactly.
    ``width`` (default :func:`bulk_width` of these anchors) fixes the bulk search width, so
    that shards of the anchors get the answers the whole set gets.
    """
    want = max(k, candidates or k)
    anchors = np.asarray(anchors, dtype=np.int64)
    codes = np.asarray(labels, dtype=np.int64)
    out = np.full((len(anchors), want), -1, dtype=np.int64)
    sizes = np.bincount(codes)
    anchor_codes = codes[anchors]
    if width is None:
        width = bulk_width(labels, anchors, want, index.index.ntotal)
    bulk = np.flatnonzero(sizes[anchor_codes] + want <= width)
    total = len(anchors)
    finished = 0
    step = rows_per_block(width * 12 + embeddings.shape[1] * 4, budget_mib)
    params = _search_params(index, width, None)
    for start, stop in blocks(len(bulk), step):
        local = bulk[start:stop]
        ids = anchors[local]
        _, found = index.index.search(_ready_block(embeddings[ids], metric), width, params=params)
        safe = np.where(found >= 0, found, 0)
        valid = (found >= 0) & (codes[safe] != anchor_codes[local][:, None])
        rank = np.cumsum(valid, axis=1)
        for r in range(want):  # the r-th valid entry of each row, if any
            hit = valid & (rank == r + 1)
            has = hit.any(axis=1)
            out[local[has], r] = found[has, np.argmax(hit[has], axis=1)]
        finished += len(local)
        if progress is not None:
            progress(finished, total)
    # Anchors of large classes, and bulk anchors whose list held fewer than k negatives.
    rest = np.union1d(np.setdiff1d(np.arange(len(anchors)), bulk), np.flatnonzero((out[:, :k] < 0).any(axis=1)))
    order = rest[np.argsort(anchor_codes[rest], kind="stable")]
    groups = np.split(order, np.flatnonzero(np.diff(anchor_codes[order])) + 1) if len(order) else []
    members = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for group in groups:
        code = int(anchor_codes[group[0]])
        inside = faiss.IDSelectorBatch(np.ascontiguousarray(members[bounds[code]:bounds[code + 1]]))
        selector = faiss.IDSelectorNot(inside)
        params = _search_params(index, want, selector)
        for start, stop in blocks(len(group), step):
            local = group[start:stop]
            _, found = index.index.search(_ready_block(embeddings[anchors[local]], metric), want, params=params)
            out[local] = found
        del selector, inside
        finished += len(group)
        if progress is not None:
            progress(min(finished, total), total)
    return out, (out[:, :k] >= 0).all(axis=1)


def bulk_width(labels: np.ndarray, anchors: np.ndarray, want: int, total: int) -> int:
    """Neighbours a bulk search asks for: wide enough to reach past the anchor's class (its
    own rows, itself, and the candidates), at most :data:`BULK_WIDTH`."""
    if len(anchors) == 0:
        return 1
    sizes = np.bincount(np.asarray(labels, dtype=np.int64))
    return int(min(BULK_WIDTH, sizes[np.asarray(labels)[anchors]].max() + want, total))


@dataclass(frozen=True)
class _SearchJob:
    """A serialised index and what every anchor shard needs; shared with workers once."""

    token: str
    index_bytes: np.ndarray
    kind: str
    description: str
    embeddings: np.ndarray
    labels: np.ndarray
    anchors: np.ndarray
    k: int
    candidates: int
    width: int
    metric: Metric
    budget_mib: float


#: Deserialised indexes, one per shared job and worker process (tasks of one job reuse it).
_WORKER_INDEXES: dict[str, ApproxIndex] = {}
SHARD_ANCHORS = 20_000


def sharded_approximate_nearest_negatives(
    engine: Engine,
    index: ApproxIndex,
    embeddings: np.ndarray,
    labels: np.ndarray,
    anchors: np.ndarray,
    k: int,
    *,
    metric: Metric = "euclidean",
    candidates: int | None = None,
    budget_mib: float = 64.0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`approximate_nearest_negatives` with the anchors sharded over ``engine``'s workers.

    The index is built once (here), serialised, shared with every worker once, and
    deserialised once per worker; each shard searches the whole index with the width of the
    whole anchor set, so the rows found are those of the unsharded call.
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    want = max(k, candidates or k)
    job = _SearchJob(
        token=uuid.uuid4().hex, index_bytes=faiss.serialize_index(index.index), kind=index.kind,
        description=index.description, embeddings=np.asarray(embeddings), labels=np.asarray(labels, dtype=np.int64),
        anchors=anchors, k=k, candidates=want, width=bulk_width(labels, anchors, want, index.index.ntotal),
        metric=metric, budget_mib=budget_mib,
    )
    shards = [(a, b) for a, b in blocks(len(anchors), SHARD_ANCHORS)]
    parts = list(engine.map(_search_shard, engine.share(job), shards, weights=[b - a for a, b in shards],
                            progress=progress))
    if not parts:
        return np.full((0, want), -1, dtype=np.int64), np.zeros(0, dtype=bool)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _search_shard(job: _SearchJob, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    built = _WORKER_INDEXES.get(job.token)
    if built is None:
        _WORKER_INDEXES.clear()  # one job at a time per worker: drop the previous index
        built = ApproxIndex(faiss.deserialize_index(job.index_bytes), job.kind, job.description)
        _WORKER_INDEXES[job.token] = built
    set_threads(1)  # the engine runs one task per core
    return approximate_nearest_negatives(
        built, job.embeddings, job.labels, job.anchors[bounds[0]:bounds[1]], job.k, metric=job.metric,
        candidates=job.candidates, width=job.width, budget_mib=job.budget_mib,
    )
