"""Approximate nearest negatives by a list-grouped IVF self-join: inverted lists as GEMM.

An IVF search scans, per query, the members of its ``nprobe`` nearest lists one vector
at a time. The same comparisons grouped *by list* (for a block of anchors, per list the
anchors that probe it × the list's members) are one BLAS product per list, so the join
compares exactly the pairs an IVF search with the same quantiser and ``nprobe`` compares,
with float keys (no code quantisation), at matrix-product speed.

Steps (:mod:`embedkit.ivflists` builds the lists), each map on the engine (local threads or
Dask workers):

1. a coarse quantiser: FAISS k-means on a sample of ``39·nlist`` centred rows (driver);
2. over row blocks: each row's list, its nearest centroid (GEMM against the centroids);
3. the rows copied once in list order (driver), so every list is one contiguous slice;
4. over blocks of anchors (consecutive in list order): the block's ``nprobe`` nearest lists
   per anchor (GEMM), then per probed list the block's anchors probing it × the list's
   members in tiles within the memory budget, each tile reduced by a numba kernel into a
   running top-``w`` of negatives (rows of another label) per anchor; then each anchor's
   ``w`` candidates re-keyed pair by pair (the arithmetic of
   :meth:`~embedkit.mining.keys.Prepared.pair_keys`) and ordered. A task returns its
   anchors' final lists: nothing is merged across tasks.

Keys are those of :mod:`embedkit.mining.blocked`: ``v = ‖a‖² + ‖b‖² − 2a·b`` on centred
rows (squared Euclidean; ``2·(1 − cos)`` for cosine). Lists are ordered by (key ascending,
row id ascending): a total order. Every (anchor, member) pair of the probed lists is
compared once, inside the anchor's own task, so the result does not depend on the order
tasks finish, the engine or the worker count; the tile shapes (set by the memory budget)
can only round a tile key differently in its last bit, which can reorder candidates only
at a tie, and the reported keys are per-pair keys, independent of tiles.

Memory: the list-sorted copy of the rows (the matrix once, in the work dtype), O(n) tables
(each row's list, position, label and term) and per task its anchors' probes, lists and
tiles within ``budget_mib``. On a distributed engine the copy reaches the
workers by path (the engine's spill file), never by value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from embedkit.chunking import blocks, rows_per_block
from embedkit.engines import Progress
from embedkit.execution import Execution
from embedkit.ivflists import (
    KMEANS_ITERATIONS,
    TRAIN_PER_LIST,
    SortedLists,
    assign_lists,
    bucket_rows,
    centroid_terms,
    probe_lists,
    release_free_heap,
    release_mapped_pages,
    sorted_lists,
    train_centroids,
)
from embedkit.mining.keys import Prepared

__all__ = ["GROUP_TASKS", "KMEANS_ITERATIONS", "MEMBER_CHUNK", "TRAIN_PER_LIST", "IvfJoin", "ivf_nearest_negatives",
           "release_mapped_pages", "train_centroids"]

#: Rows of one member chunk at most (a big list is joined chunk by chunk).
MEMBER_CHUNK = 4096
#: Roughly this many anchor-block tasks (fewer, bigger blocks: fewer and larger products
#: per list; more: balance across workers); blocks also stay within the memory budget.
GROUP_TASKS = 16
#: Candidate pairs re-keyed at a time (their two rows are gathered).
RERANK_PAIRS = 4096


@dataclass(frozen=True)
class IvfJoin:
    """The outcome of :func:`ivf_nearest_negatives`.

    ``rows[m, r]``: anchor m's r-th nearest negative found (key ascending, ties to the
    smaller row; ``-1`` = none; int32 below 2³¹ rows), ``keys`` their per-pair keys (as
    float32); ``complete[m]``: ``k`` were found.
    """

    rows: np.ndarray
    keys: np.ndarray
    complete: np.ndarray
    nlist: int
    nprobe: int
    list_sizes: np.ndarray
    pairs: int
    #: Wall seconds of each step: ``train`` (0 when centroids were given), ``assign``, ``sort``, ``join``.
    seconds: tuple[tuple[str, float], ...] = ()

    @property
    def description(self) -> str:
        return f"list-grouped IVF join, {self.nlist:,} lists, nprobe={self.nprobe} (exact float keys)"


# -- numba kernels ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _insert(best_v, best_j, p, v, j):  # type: ignore[no-untyped-def]
    """Insert ``(v, j)`` into row ``p``, kept in (key, id) order with missing entries
    (``inf``, ``-1``) last, if it ranks before the row's last entry."""
    w = best_v.shape[1]
    last_j = best_j[p, w - 1]
    if last_j >= 0:
        last_v = best_v[p, w - 1]
        if v > last_v or (v == last_v and j >= last_j):
            return
    pos = w - 1
    while pos > 0:
        pj = best_j[p, pos - 1]
        pv = best_v[p, pos - 1]
        if pj < 0 or pv > v or (pv == v and pj > j):
            best_v[p, pos] = pv
            best_j[p, pos] = pj
            pos -= 1
        else:
            break
    best_v[p, pos] = v
    best_j[p, pos] = j


# Fast-math without the no-NaN/no-Inf assumptions: missing entries are inf.
_TILE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(nogil=True, cache=True, fastmath=_TILE_MATH)
def negatives_tile(g, q_pos, q_terms, q_labels, m_terms, m_labels, m_ids, best_v, best_j):  # type: ignore[no-untyped-def]
    """Fold a tile ``g = queries · membersᵀ`` into the queries' running lists: tile row r is
    query ``p = q_pos[r]`` (its term ``q_terms[p]``, label ``q_labels[p]``, list ``best_*[p]``).

    Members are sorted by label, so query p's own label is one run of columns (found by
    bisection), skipped: negatives only. Key: ``max(0, q_term + m_term − 2g)`` in float64.
    Per row, a branch-free vectorised pass finds ``min(m_term − 2g)``; only rows where that
    bound can enter the list (rare once lists fill) run the insertion pass.
    """
    n_rows, n_cols = g.shape
    w = best_v.shape[1]
    for r in range(n_rows):
        p = q_pos[r]
        a_term = q_terms[p]
        lo = np.searchsorted(m_labels, q_labels[p], side="left")
        hi = np.searchsorted(m_labels, q_labels[p], side="right")
        low = np.inf
        for c in range(lo):
            low = min(low, m_terms[c] - 2.0 * g[r, c])
        for c in range(hi, n_cols):
            low = min(low, m_terms[c] - 2.0 * g[r, c])
        worst = best_v[p, w - 1]
        bound = a_term + low
        if bound - 1e-9 * abs(bound) > worst:  # slack: the bound and the keys round differently
            continue
        for c in range(n_cols):
            if lo <= c < hi:
                continue
            v = max(a_term + m_terms[c] - 2.0 * g[r, c], 0.0)
            if v <= worst:
                _insert(best_v, best_j, p, v, m_ids[c])
                worst = best_v[p, w - 1]


# -- tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JoinJob:
    """Shared by every anchor-block task: the list-sorted rows, the anchors' positions in
    them (ascending) with each one's index in the caller's anchors, and the centroids."""

    lists: SortedLists
    anchor_pos: np.ndarray
    anchor_index: np.ndarray
    centroids: np.ndarray
    centroid_sq: np.ndarray
    nprobe: int
    width: int
    budget_mib: float


def _join_block(job: _JoinJob, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(anchor indices, keys, rows, pairs compared)`` of the block's anchors ``bounds``."""
    s, e = bounds
    lists, width = job.lists, job.width
    dim, itemsize = lists.rows.shape[1], lists.rows.itemsize
    index = job.anchor_index[s:e]
    pos = job.anchor_pos[s:e]
    count = e - s
    if isinstance(lists.rows, np.memmap):  # mapped (a worker): the block's rows gathered once
        anchor_rows, local = np.asarray(lists.rows[pos]), np.arange(count)
    else:  # in memory: a view of the block's span
        anchor_rows, local = lists.rows[pos[0]:pos[-1] + 1], pos - pos[0]
    q_terms, q_labels = lists.terms[pos], lists.labels[pos]
    nlist = len(job.centroids)
    probes = probe_lists(anchor_rows, local, job.centroids, job.centroid_sq, job.nprobe, job.budget_mib / 16)
    by_list, q_ptr = bucket_rows(probes, nlist, np.arange(count, dtype=np.int32))
    del probes
    best_v = np.full((count, width), np.inf)
    best_j = np.full((count, width), -1, dtype=np.int64)
    member_chunk = min(MEMBER_CHUNK, rows_per_block(dim * itemsize * 2, job.budget_mib / 4))
    pairs = 0
    for lst in np.flatnonzero(np.diff(q_ptr)):
        first, last = int(lists.ptr[lst]), int(lists.ptr[lst + 1])
        queries = by_list[q_ptr[lst]:q_ptr[lst + 1]]
        pairs += len(queries) * (last - first)
        for m0 in range(first, last, member_chunk):
            m1 = min(last, m0 + member_chunk)
            members = np.asarray(lists.rows[m0:m1])
            m_terms, m_labels, m_ids = lists.terms[m0:m1], lists.labels[m0:m1], lists.ids[m0:m1]
            # The tile and its query rows within half the budget.
            step = rows_per_block((m1 - m0) * itemsize + dim * itemsize * 2, job.budget_mib / 2)
            for q0 in range(0, len(queries), step):
                q = queries[q0:q0 + step]
                negatives_tile(anchor_rows[local[q]] @ members.T, q, q_terms, q_labels, m_terms, m_labels, m_ids,
                               best_v, best_j)
    keys = _pair_keys(lists, anchor_rows, local, q_terms, best_j)
    release_mapped_pages(lists.rows)
    release_free_heap()  # this task's tiles, before the next task's (a thread's arena keeps them)
    order = np.lexsort((np.where(best_j >= 0, best_j, np.iinfo(np.int64).max), keys), axis=1)
    id_type = np.int32 if len(lists.ids) < 2**31 else np.int64
    return (index, np.take_along_axis(keys, order, axis=1).astype(np.float32),
            np.take_along_axis(best_j, order, axis=1).astype(id_type), pairs)


def _pair_keys(lists: SortedLists, anchor_rows: np.ndarray, local: np.ndarray, terms: np.ndarray,
               found: np.ndarray) -> np.ndarray:
    """Per-pair keys of the anchors' candidates (``inf`` where none), computed as
    :meth:`~embedkit.mining.keys.Prepared.pair_keys` computes them, independent of tiles."""
    keys = np.full(found.shape, np.inf)
    width = found.shape[1]
    step = max(1, RERANK_PAIRS // width)
    for r0 in range(0, len(found), step):
        part = found[r0:r0 + step]
        ok = part >= 0
        where = lists.where[part[ok]]
        a = np.repeat(np.arange(r0, r0 + len(part)), width)[ok.ravel()]
        dots = np.einsum("ij,ij->i", anchor_rows[local[a]], np.asarray(lists.rows[where])).astype(np.float64)
        part_keys = keys[r0:r0 + step]
        part_keys[ok] = np.maximum(terms[a] + lists.terms[where] - 2.0 * dots, 0.0)
    return keys


# -- the driver ------------------------------------------------------------------------------


def _phase(progress: Progress | None, index: int, count: int) -> Progress | None:
    """Progress of phase ``index`` of ``count`` equal phases."""
    if progress is None:
        return None
    scale = 1_000_000

    def report(done: int, total: int) -> None:
        progress(index * scale + (scale * done) // max(1, total), count * scale)

    return report


def ivf_nearest_negatives(
    prep: Prepared,
    labels: np.ndarray,
    anchors: np.ndarray,
    k: int,
    *,
    nlist: int,
    nprobe: int,
    candidates: int | None = None,
    seed: int = 0,
    execution: Execution = Execution(),
    centroids: np.ndarray | None = None,
) -> IvfJoin:
    """Up to ``candidates`` (default ``k``) nearest negatives of each anchor (sorted row ids)
    among the members of its ``nprobe`` nearest lists of ``nlist`` (k-means, seed ``seed``;
    or the given ``centroids``, in the centred space of ``prep``).

    With ``nprobe = nlist`` every pair is compared: the result is the exact scan's. Memory:
    one list-sorted copy of the rows and the O(n) list tables on the driver, and per task
    its anchors' lists and tiles within the execution's budget; ``prep.x`` (memory-mapped
    or path-backed) is read in row blocks, never gathered row by row. k-means runs here on
    the execution's threads; the assignment and the join run as tasks on its engine.
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    codes = np.ascontiguousarray(labels, dtype=np.int64)
    width = max(k, candidates or k)
    runner, budget_mib, progress = execution.engine, execution.budget_mib, execution.progress
    started = time.perf_counter()
    if centroids is None:
        centroids = train_centroids(prep, nlist, seed=seed, threads=execution.threads)
    trained = time.perf_counter()
    nlist = len(centroids)
    nprobe = int(max(1, min(nprobe, nlist)))
    assign = assign_lists(prep, centroids, runner, budget_mib, _phase(progress, 0, 2))
    assigned = time.perf_counter()
    release_free_heap()  # the assign tasks' score tiles, before the copy of the rows
    lists = sorted_lists(prep, codes, assign, nlist, budget_mib)
    del assign
    # Anchors in list order: a block of them probes nearby lists, and reads one span of rows.
    pos = lists.where[anchors]
    id_type = np.int32 if len(prep.x) < 2**31 else np.int64
    index = np.argsort(pos, kind="stable").astype(id_type)
    pos = pos[index]
    release_free_heap()
    per_task = rows_per_block(width * 16 + nprobe * 8 + 64, budget_mib / 2)
    bounds = list(blocks(len(anchors), min(per_task, -(-len(anchors) // GROUP_TASKS))))
    shared = runner.share(_JoinJob(lists, pos, index, centroids, centroid_terms(centroids), nprobe, width,
                                   budget_mib))
    sorted_at = time.perf_counter()
    rows = np.full((len(anchors), width), -1, dtype=id_type)
    keys = np.full((len(anchors), width), np.inf, dtype=np.float32)
    pairs = 0
    for part_index, part_keys, part_rows, part_pairs in runner.map(
            _join_block, shared, bounds, weights=[b - a for a, b in bounds], progress=_phase(progress, 1, 2)):
        rows[part_index] = part_rows
        keys[part_index] = part_keys
        pairs += part_pairs
    sizes = np.diff(lists.ptr)
    del shared, lists
    release_free_heap()  # what the tasks freed stays in the threads' malloc arenas otherwise
    seconds = (("train", trained - started), ("assign", assigned - trained), ("sort", sorted_at - assigned),
               ("join", time.perf_counter() - sorted_at))
    return IvfJoin(rows=rows, keys=keys, complete=(rows[:, :k] >= 0).all(axis=1), nlist=nlist, nprobe=nprobe,
                   list_sizes=sizes, pairs=pairs, seconds=seconds)
