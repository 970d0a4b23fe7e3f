"""Retrieval metrics from exact k-nearest neighbours, as pytorch-metric-learning defines them.

When the queries are the reference rows (a self-join), every row's neighbours come from
the symmetric tiles of the one tile driver: each pair's product is computed once and fed
to the running top-k of both rows (half the work of a search). Separate queries are
ranked by FAISS (exact ``IndexFlatL2`` / ``IndexFlatIP`` through :mod:`embedkit.knn`). A
neighbour is *relevant* when it has the query's label. With ``R`` = the number of
reference rows sharing the query's label (the query itself excluded when queries are the
reference rows):

- ``precision_at_1`` = mean over queries of ``rel(1)``;
- ``r_precision`` = mean of ``(1/R) · Σ_{i≤R} rel(i)``;
- ``map_at_r`` = mean of ``(1/R) · Σ_{i≤R} rel(i) · P(i)`` with
  ``P(i) = (1/i) · Σ_{j≤i} rel(j)`` (pytorch-metric-learning's
  ``mean_average_precision_at_r``);
- ``recall_at_k`` = fraction of queries with at least one relevant row among their
  ``k`` nearest (the "Recall@K" of the deep-metric-learning papers, not IR recall).

Queries whose label has no other reference row (``R = 0``, "lone" queries) are skipped
by every metric, as ``AccuracyCalculator`` does. The search width is the size of the
largest reference class (or the largest ``k`` asked, if larger), so every relevant row a
metric could need is retrieved. Ties: neighbours rank by ``(value, row id)`` (see
:func:`embedkit.knn.search_index`): among equal values the smaller row id comes
first; metrics use that order as given. Self-join distances are the key of
:mod:`embedkit.mining.blocked` (``‖a‖² + ‖b‖² − 2a·b`` of centred rows, float64 sums of
the float32 product; ``2 − 2·cos`` for cosine), FAISS's are float32: the two can order
near-ties (within float32 rounding) differently.

Queries are processed in blocks under a memory budget; nothing n×n is ever held.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace

import faiss
import numpy as np

from embedkit.arrays import mapped_file_guard
from embedkit.choices import DEFAULT_KS, METRIC_NAMES
from embedkit.chunking import blocks, rows_per_block
from embedkit.dataset import Dataset
from embedkit.distances import Metric
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.knn import faiss_ready, flat_index, search_index, set_threads


@dataclass(frozen=True)
class RetrievalMetrics:
    """Retrieval quality of ``queries`` against a reference set.

    ``per_class`` (when asked) is a column table: ``label`` (code), ``queries``,
    ``evaluated`` and one column per metric (NaN for a class whose queries are all lone).
    """

    metric: Metric
    same_source: bool
    queries: int
    evaluated: int
    lone: int
    references: int
    search_k: int
    largest_class: int
    ks: tuple[int, ...]
    precision_at_1: float
    r_precision: float
    map_at_r: float
    recall_at_k: dict[int, float]
    per_class: dict[str, np.ndarray] | None = None
    label_names: np.ndarray | None = field(default=None, repr=False)

    @property
    def figures(self) -> dict[str, float]:
        """Every metric by its name (``recall_at_5``, ...), as ``check`` understands them."""
        out = {name: float(getattr(self, name)) for name in METRIC_NAMES}
        out.update({f"recall_at_{k}": v for k, v in self.recall_at_k.items()})
        return out


#: Multiply-adds of one query block's search (~0.3 s on one core): bounds the Ctrl-C latency.
BLOCK_WORK = 2_000_000_000


def query_scores(hits: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-query metrics from a block of ranked relevance flags.

    Parameters
    ----------
    hits : (q, K) bool, ``hits[i, r]`` = the r-th neighbour of query i has its label.
    relevant : (q,) int, R of each query (>= 1; at most K).
    ks : the k of each ``recall_at_k``.

    >>> s = query_scores(np.array([[True, False, True]]), np.array([2]), (1, 2))
    >>> float(s["r_precision"][0]), float(s["map_at_r"][0]), float(s["recall_at_2"][0])
    (0.5, 0.5, 1.0)
    """
    width = hits.shape[1]
    within = np.arange(width)[None, :] < relevant[:, None]
    rel = hits & within
    correct = np.cumsum(rel, axis=1, dtype=np.int32)
    precision_at_i = correct / np.arange(1, width + 1, dtype=np.float64)[None, :]
    out = {
        "precision_at_1": hits[:, 0].astype(np.float64) if width else np.zeros(len(hits)),
        "r_precision": rel.sum(axis=1, dtype=np.int64) / relevant,
        "map_at_r": np.where(rel, precision_at_i, 0.0).sum(axis=1) / relevant,
    }
    for k in ks:
        out[f"recall_at_{k}"] = hits[:, :k].any(axis=1).astype(np.float64)
    return out


def retrieval_metrics(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    queries: np.ndarray | None = None,
    query_labels: np.ndarray | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    metric: Metric = "euclidean",
    per_class: bool = False,
    execution: Execution = Execution(),
) -> RetrievalMetrics:
    """Retrieval metrics of every query against ``embeddings`` (the reference set).

    Parameters
    ----------
    embeddings : (n, d) reference rows; labels : (n,) int codes.
    queries, query_labels : (q, d) and (q,) codes in the same code space; default: the
        reference rows themselves, each excluded from its own neighbours by id.
    ks : the k of each ``recall_at_k`` (default 1, 5, 10).
    metric : ``euclidean`` (ascending distance) or ``cosine`` (descending similarity).
    execution : where the blocks run, within which memory budget (default: local threads).

    >>> x = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> m = retrieval_metrics(x, np.array([0, 0, 1, 1]), ks=(1,))
    >>> m.precision_at_1, m.map_at_r
    (1.0, 1.0)
    """
    ks = tuple(sorted(set(ks)))
    if any(k < 1 for k in ks):
        raise OptionError(f"--k values must be >= 1; got {', '.join(map(str, ks))}")
    same_source = queries is None
    labels = np.asarray(labels, dtype=np.int64)
    if same_source:
        query_labels = labels
    elif query_labels is None:
        raise OptionError("queries need query_labels")
    query_labels = np.asarray(query_labels, dtype=np.int64)
    n_ref = len(labels)
    classes = int(max(labels.max(initial=-1), query_labels.max(initial=-1))) + 1
    ref_sizes = np.bincount(labels, minlength=classes).astype(np.int64)
    relevant_all = ref_sizes[query_labels] - (1 if same_source else 0)
    largest = int(ref_sizes.max(initial=0))
    available = n_ref - (1 if same_source else 0)
    search_k = min(max(largest, max(ks) if ks else 1), available)
    evaluated_mask = relevant_all > 0
    evaluated = int(evaluated_mask.sum())
    if evaluated == 0 or search_k < 1:
        raise InputError(
            "no query has another reference row with its label (every label occurs once"
            + (")" if same_source else " or not at all in the reference)")
            + "; retrieval metrics are undefined"
        )

    names = (*METRIC_NAMES, *(f"recall_at_{k}" for k in ks))
    if same_source:
        sums, class_sums = _self_join_sums(embeddings, labels, relevant_all, evaluated_mask, search_k, ks, names,
                                           metric, classes if per_class else 0, execution)
    else:
        sums, class_sums = _search_sums(embeddings, labels, queries, query_labels, relevant_all, evaluated_mask,
                                        search_k, ks, names, metric, classes if per_class else 0, execution)
    means = {name: sums[name] / evaluated for name in names}
    table = None
    if per_class:
        counts = np.bincount(query_labels, minlength=classes)
        done = np.bincount(query_labels[evaluated_mask], minlength=classes)
        present = np.flatnonzero(counts)
        table = {"label": present, "queries": counts[present], "evaluated": done[present]}
        with np.errstate(invalid="ignore", divide="ignore"):
            for name in names:
                table[name] = np.where(done[present] > 0, class_sums[name][present] / done[present], np.nan)
    n_queries = n_ref if same_source else len(queries)  # type: ignore[arg-type]
    return RetrievalMetrics(
        metric=metric, same_source=same_source, queries=n_queries, evaluated=evaluated,
        lone=n_queries - evaluated, references=n_ref, search_k=search_k, largest_class=largest, ks=ks,
        precision_at_1=means["precision_at_1"], r_precision=means["r_precision"], map_at_r=means["map_at_r"],
        recall_at_k={k: means[f"recall_at_{k}"] for k in ks}, per_class=table,
    )


def _self_join_sums(
    embeddings: np.ndarray, labels: np.ndarray, relevant: np.ndarray, evaluated: np.ndarray, search_k: int,
    ks: tuple[int, ...], names: tuple[str, ...], metric: Metric, classes: int, execution: Execution,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metric sums when the queries are the reference rows: the label k-NN of every row is a
    self-join, run on the symmetric tiles (:func:`embedkit.mining.symmetric.symmetric_topk`),
    each pair multiplied once and fed to the running top-k of both its rows. Neighbours rank
    by (key, row): ascending distance, ties to the smaller row; a row is never its own
    neighbour (duplicates of it are)."""
    from embedkit.mining.keys import prepare
    from embedkit.mining.symmetric import symmetric_topk

    prep = prepare(embeddings, metric)
    n = len(labels)
    _, found = symmetric_topk(prep, np.arange(n, dtype=np.int64), evaluated, search_k, execution=execution)
    sums = dict.fromkeys(names, 0.0)
    class_sums = {name: np.zeros(classes) for name in names} if classes else {}
    step = rows_per_block(search_k * 16, execution.budget_mib)
    for start, stop in blocks(n, step):
        rows = start + np.flatnonzero(evaluated[start:stop])
        if len(rows) == 0:
            continue
        ids = found[rows]
        hits = (labels[np.where(ids >= 0, ids, 0)] == labels[rows][:, None]) & (ids >= 0)
        scores = query_scores(hits, relevant[rows], ks)
        for name in names:
            sums[name] += float(scores[name].sum())
            if classes:
                class_sums[name] += np.bincount(labels[rows], weights=scores[name], minlength=classes)
    return sums, class_sums


def _search_sums(
    embeddings: np.ndarray, labels: np.ndarray, queries: np.ndarray | None, query_labels: np.ndarray,
    relevant_all: np.ndarray, evaluated_mask: np.ndarray, search_k: int, ks: tuple[int, ...],
    names: tuple[str, ...], metric: Metric, classes: int, execution: Execution,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metric sums of separate queries against the reference, by exact FAISS search in blocks."""
    per_class = classes > 0
    same_source = queries is None
    reference = faiss_ready(embeddings, metric=metric)
    source = embeddings if same_source else queries
    assert source is not None
    n_queries = len(source)
    job = _ScoreJob(
        token=uuid.uuid4().hex, reference=reference, queries=None if same_source else source,
        labels=labels, query_labels=query_labels, relevant=relevant_all, evaluated=evaluated_mask,
        search_k=search_k, ks=ks, names=names, metric=metric, classes=classes if per_class else 0,
        budget_mib=execution.budget_mib,
    )
    step = rows_per_block(search_k * 48 + reference.shape[1] * 8, execution.budget_mib)
    # Also bound a block's work (queries × references × dim multiply-adds), so Ctrl-C, which
    # waits for the running blocks, is honoured within about a second on one core.
    step = min(step, max(1, BLOCK_WORK // max(1, reference.shape[0] * reference.shape[1])))
    query_blocks = list(blocks(n_queries, step))
    # Blocks are tasks (threads here, or Dask workers), each searching with one BLAS/FAISS
    # thread: the neighbours then do not depend on the engine (BLAS's thread count changes
    # the rounding of the distances, and so the order of near-ties).
    engine = execution.engine
    sums = dict.fromkeys(names, 0.0)
    class_sums = {name: np.zeros(classes) for name in names} if per_class else {}
    for block_sums, block_class_sums in engine.map(_score_block, engine.share(job), query_blocks,
                                                   weights=[b - a for a, b in query_blocks],
                                                   progress=execution.progress):
        for k, name in enumerate(names):
            sums[name] += float(block_sums[k])
            if per_class:
                class_sums[name] += block_class_sums[k]
    _INDEXES.pop(job.token, None)  # this process's copy (workers drop theirs on the next job)
    return sums, class_sums


@dataclass(frozen=True)
class _ScoreJob:
    """What every block of queries needs; shared with the workers once."""

    token: str
    reference: np.ndarray  # faiss_ready copy
    queries: np.ndarray | None  # as given (None: the reference rows); made faiss_ready per block
    labels: np.ndarray
    query_labels: np.ndarray
    relevant: np.ndarray
    evaluated: np.ndarray
    search_k: int
    ks: tuple[int, ...]
    names: tuple[str, ...]
    metric: Metric
    classes: int
    budget_mib: float


#: Exact indexes, one per shared job and process (the blocks of one job reuse it).
_INDEXES: dict[str, faiss.Index] = {}
_INDEX_LOCK = threading.Lock()


def _score_block(job: _ScoreJob, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-metric sums (and per-class sums) over the evaluated queries of one block."""
    with _INDEX_LOCK:
        index = _INDEXES.get(job.token)
        if index is None:
            _INDEXES.clear()
            index = _INDEXES[job.token] = flat_index(job.reference, metric=job.metric)
    set_threads(1)  # the engine runs one task per core
    start, stop = bounds
    sums = np.zeros(len(job.names))
    class_sums = np.zeros((len(job.names), job.classes)) if job.classes else None
    keep = np.flatnonzero(job.evaluated[start:stop])
    if len(keep) == 0:
        return sums, class_sums
    rows = start + keep
    # A file truncated under its memory map: one error line, not SIGBUS.
    mapped_file_guard(job.reference if job.queries is None else job.queries)()
    block = job.reference[rows] if job.queries is None else faiss_ready(job.queries[rows], metric=job.metric)
    ids = rows.astype(np.int64) if job.queries is None else None
    found = search_index(index, block, job.search_k, metric=job.metric, query_ids=ids, budget_mib=job.budget_mib)
    valid = found.indices >= 0
    hits = (job.labels[np.where(valid, found.indices, 0)] == job.query_labels[rows][:, None]) & valid
    scores = query_scores(hits, job.relevant[rows], job.ks)
    for k, name in enumerate(job.names):
        sums[k] = float(scores[name].sum())
        if class_sums is not None:
            class_sums[k] = np.bincount(job.query_labels[rows], weights=scores[name], minlength=job.classes)
    return sums, class_sums


def shared_label_codes(reference: Dataset, queries: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both label vectors recoded into one code space: ``(ref_codes, query_codes, names)``.

    Labels match by value; integer and string labels are compared as text when the two
    files disagree on the type (``7`` matches ``"7"``).
    """
    ref = reference.require_labels("eval (reference)")
    qry = queries.require_labels("eval (queries)")
    ref_names = np.asarray(reference.label_names if reference.label_names is not None else np.unique(ref))
    qry_names = np.asarray(queries.label_names if queries.label_names is not None else np.unique(qry))
    if ref_names.dtype.kind != qry_names.dtype.kind:
        ref_names, qry_names = ref_names.astype(str), qry_names.astype(str)
    names, inverse = np.unique(np.concatenate([ref_names, qry_names]), return_inverse=True)
    ref_map, qry_map = inverse[: len(ref_names)], inverse[len(ref_names):]
    return ref_map[ref].astype(np.int64), qry_map[qry].astype(np.int64), names


def evaluate_retrieval(
    reference: Dataset,
    queries: Dataset | None = None,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    metric: Metric = "euclidean",
    per_class: bool = False,
    execution: Execution = Execution(),
) -> RetrievalMetrics:
    """:func:`retrieval_metrics` over datasets: every row against the others, or a
    ``queries`` set against ``reference`` (a gallery split; labels matched by value)."""
    if queries is None:
        labels = reference.require_labels("eval")
        result = retrieval_metrics(reference.embeddings, labels, ks=ks, metric=metric, per_class=per_class,
                                   execution=execution)
        names = reference.label_names
    else:
        if queries.dim != reference.dim:
            raise InputError(
                f"{queries.source}: queries have {queries.dim} dimensions but the reference "
                f"{reference.source} has {reference.dim}"
            )
        ref_codes, query_codes, names = shared_label_codes(reference, queries)
        result = retrieval_metrics(reference.embeddings, ref_codes, queries=queries.embeddings,
                                   query_labels=query_codes, ks=ks, metric=metric, per_class=per_class,
                                   execution=execution)
    return replace(result, label_names=names)
