"""Approximate nearest negatives by a list-grouped IVF self-join: inverted lists as GEMM.

An IVF search scans, per query, the members of its ``nprobe`` nearest lists one vector
at a time. The same comparisons grouped *by list* (for each list, the anchors that probe
it × the list's members) are one BLAS product per list, so the join compares exactly the
pairs an IVF search with the same quantiser and ``nprobe`` compares, with float keys (no
code quantisation), at matrix-product speed.

Steps, each a map on the engine (local threads or Dask workers):

1. a coarse quantiser: FAISS k-means on a sample of ``39·nlist`` centred rows (driver);
2. over row blocks: each row's list (nearest centroid) and each anchor's ``nprobe``
   nearest centroids, by GEMM against the centroids and a numba selection;
3. over groups of lists: per list, probing anchors × members in tiles within the memory
   budget, each tile reduced by a numba kernel into a running top-``w`` of negatives
   (rows of another label) per anchor; a task returns only its anchors' partial lists;
4. on the driver, partial lists merged into each anchor's list as tasks complete.

Keys are those of :mod:`embedkit.mining.blocked`: ``v = ‖a‖² + ‖b‖² − 2a·b`` on centred
rows (squared Euclidean; ``2·(1 − cos)`` for cosine), float32 products accumulated into
float64 keys. Lists are ordered by (key ascending, row id ascending): a total order, and
every (anchor, member) pair is compared once (in the one list holding the member), so
the merged lists do not depend on the grouping, the order tasks finish, the engine or the
worker count. Only the tile shapes (set by the memory budget) can round a key
differently in its last bit; callers re-rank the candidates by exact per-pair keys.
"""

from __future__ import annotations

import mmap
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from embedkit.chunking import DEFAULT_BUDGET_MIB, rows_per_block
from embedkit.engines import Engine, LocalEngine, Progress
from embedkit.mining.keys import Prepared

#: FAISS's own minimum of training points per centroid.
TRAIN_PER_LIST = 39
KMEANS_ITERATIONS = 10
#: Rows of one member chunk at most (a big list is joined chunk by chunk).
MEMBER_CHUNK = 4096
#: Roughly this many list-group tasks (more for balance and smaller partial results, fewer
#: for less merging: an anchor's partial list comes back from every task it probes into).
GROUP_TASKS = 128
#: List-group tasks submitted at a time: bounds the partial results waiting to be merged.
IN_FLIGHT = 8


@dataclass(frozen=True)
class IvfJoin:
    """The outcome of :func:`ivf_nearest_negatives`.

    ``rows[m, r]``: anchor m's r-th nearest negative found (key ascending, ties to the
    smaller row; ``-1`` = none), ``keys`` their keys; ``complete[m]``: ``k`` were found.
    """

    rows: np.ndarray
    keys: np.ndarray
    complete: np.ndarray
    nlist: int
    nprobe: int
    list_sizes: np.ndarray
    pairs: int
    #: Wall seconds of each step: ``train`` (0 when centroids were given), ``assign``, ``join``.
    seconds: tuple[tuple[str, float], ...] = ()

    @property
    def description(self) -> str:
        return f"list-grouped IVF join, {self.nlist:,} lists, nprobe={self.nprobe} (exact float keys)"


def train_centroids(prep: Prepared, nlist: int, *, seed: int = 0, threads: int | None = None) -> np.ndarray:
    """``nlist`` k-means centroids (FAISS, ``KMEANS_ITERATIONS`` rounds) of ``39·nlist``
    centred rows sampled with ``seed``; in the work dtype, in the centred space."""
    import faiss

    from embedkit.knn import set_threads

    n, dim = prep.x.shape
    nlist = int(max(1, min(nlist, n)))
    sample = min(n, nlist * TRAIN_PER_LIST)
    rows = np.sort(np.random.default_rng([seed, 4099]).choice(n, sample, replace=False))
    data = np.ascontiguousarray(_Reader(prep).rows(rows), dtype=np.float32)
    release_mapped_pages(prep.x)
    if nlist == 1:
        return data.mean(axis=0, keepdims=True).astype(prep.x.dtype)
    set_threads(threads)
    kmeans = faiss.Kmeans(dim, nlist, niter=KMEANS_ITERATIONS, seed=int(seed) & 0x7FFFFFFF, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=TRAIN_PER_LIST + 1)
    kmeans.train(data)
    return np.ascontiguousarray(kmeans.centroids, dtype=prep.x.dtype)


def release_mapped_pages(array: np.ndarray) -> None:
    """Drop this process's resident pages of a read-only memory-mapped ``array``
    (``madvise(MADV_DONTNEED)``); a no-op for any other array.

    Gathering rows by fancy indexing touches pages all over the file, and mapped pages
    count in the process's resident memory until the kernel needs them back; a task
    releases them when done, so a process (or a Dask worker) holds the rows it is
    working on, not the file. The data stay in the page cache: the next read of a
    dropped page is a minor fault, not a disk read.
    """
    mapped: object = array
    while isinstance(mapped, np.ndarray) and not (isinstance(mapped, np.memmap) and mapped.filename):
        mapped = mapped.base
    mapping = getattr(mapped, "_mmap", None)
    if (isinstance(mapped, np.memmap) and getattr(mapped, "mode", None) == "r" and mapping is not None
            and hasattr(mmap, "MADV_DONTNEED")):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map or an unsupported platform: nothing to release
            pass


#: Scattered rows gathered from a memory map between two releases of its pages (each such
#: row maps up to 64 KiB of file around it: 1 024 rows map at most 64 MiB).
GATHER_ROWS = 1024


class _Reader:
    """Rows of ``prep`` by index, in chunks of at most :data:`GATHER_ROWS`, releasing the
    mapped pages every :data:`GATHER_ROWS` rows read (so a task's resident file pages stay
    bounded, however scattered its rows)."""

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep
        self.since = 0

    def rows(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) <= GATHER_ROWS:
            out = self.prep.rows(ids)
            self._count(len(ids))
            return out
        out = np.empty((len(ids), self.prep.x.shape[1]), dtype=self.prep.x.dtype)
        for start in range(0, len(ids), GATHER_ROWS):
            part = ids[start:start + GATHER_ROWS]
            out[start:start + len(part)] = self.prep.rows(part)
            self._count(len(part))
        return out

    def _count(self, rows: int) -> None:
        self.since += rows
        if self.since >= GATHER_ROWS:
            release_mapped_pages(self.prep.x)
            self.since = 0


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


@njit(nogil=True, cache=True)
def nearest_lists_tile(scores, centroid_sq, is_anchor, nprobe, assign, probes):  # type: ignore[no-untyped-def]
    """Per row of ``scores = rows · centroidsᵀ``: its list (smallest ``‖c‖² − 2 x·c``, ties to
    the smaller list) into ``assign``, and for anchor rows its ``nprobe`` nearest lists into
    the next rows of ``probes``; returns the probe rows written."""
    n_rows, n_lists = scores.shape
    keys = np.empty(nprobe)
    ids = np.empty(nprobe, dtype=np.int64)
    out = 0
    for r in range(n_rows):
        keys[:] = np.inf
        ids[:] = -1
        worst = np.inf
        for c in range(n_lists):
            v = centroid_sq[c] - 2.0 * scores[r, c]
            if v < worst:  # strict: an equal key keeps the smaller list
                pos = nprobe - 1
                while pos > 0 and keys[pos - 1] > v:
                    keys[pos] = keys[pos - 1]
                    ids[pos] = ids[pos - 1]
                    pos -= 1
                keys[pos] = v
                ids[pos] = c
                worst = keys[nprobe - 1]
        assign[r] = ids[0]
        if is_anchor[r]:
            for t in range(nprobe):
                probes[out, t] = ids[t]
            out += 1
    return out


# Fast-math without the no-NaN/no-Inf assumptions: missing entries are inf.
_TILE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(nogil=True, cache=True, fastmath=_TILE_MATH)
def negatives_tile(g, q_terms, m_terms, q_lo, q_hi, q_pos, m_ids, best_v, best_j):  # type: ignore[no-untyped-def]
    """Fold a tile ``g = queries · membersᵀ`` into the queries' running lists ``best_*[q_pos]``.

    Members are sorted by label, so query r's own label is the run ``q_lo[r]:q_hi[r]`` of
    columns, skipped (negatives only). Key: ``max(0, q_term + m_term − 2g)`` in float64.
    Per row, a branch-free vectorised pass finds ``min(m_term − 2g)``; only rows where that
    bound can enter the list (rare once lists fill) run the insertion pass.
    """
    n_rows, n_cols = g.shape
    w = best_v.shape[1]
    for r in range(n_rows):
        p = q_pos[r]
        a_term = q_terms[r]
        lo = q_lo[r]
        hi = q_hi[r]
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


@njit(nogil=True, cache=True)
def merge_lists(best_v, best_j, pos, part_v, part_j):  # type: ignore[no-untyped-def]
    """Merge partial lists ``part_*[r]`` into ``best_*[pos[r]]`` (same (key, id) order)."""
    for r in range(part_v.shape[0]):
        p = pos[r]
        for t in range(part_v.shape[1]):
            if part_j[r, t] < 0:
                break
            _insert(best_v, best_j, p, part_v[r, t], part_j[r, t])


@njit(nogil=True, cache=True)
def bucket_rows(lists, n_lists, ids):  # type: ignore[no-untyped-def]
    """Counting sort: ``ids[r]`` into bucket ``lists[r, t]`` for every ``t`` (stable, so
    ascending ``ids`` stay ascending per bucket); returns the grouped ids and the offsets."""
    n_rows, per_row = lists.shape
    ptr = np.zeros(n_lists + 1, dtype=np.int64)
    for r in range(n_rows):
        for t in range(per_row):
            ptr[lists[r, t] + 1] += 1
    for b in range(n_lists):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    out = np.empty(n_rows * per_row, dtype=ids.dtype)
    for r in range(n_rows):
        for t in range(per_row):
            b = lists[r, t]
            out[fill[b]] = ids[r]
            fill[b] += 1
    return out, ptr


# -- tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AssignJob:
    """Shared by every row-block task of step 2."""

    prep: Prepared
    centroids: np.ndarray
    centroid_sq: np.ndarray
    is_anchor: np.ndarray
    nprobe: int


def _assign_block(job: _AssignJob, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of rows ``bounds`` and the probed lists of the anchors among them."""
    a, b = bounds
    rows = job.prep.rows(slice(a, b))
    scores = rows @ job.centroids.T
    is_anchor = job.is_anchor[a:b]
    assign = np.empty(b - a, dtype=np.int32)
    probes = np.empty((int(is_anchor.sum()), job.nprobe), dtype=np.int16 if len(job.centroids) < 2**15 else np.int32)
    nearest_lists_tile(scores, job.centroid_sq, is_anchor, job.nprobe, assign, probes)
    release_mapped_pages(job.prep.x)
    return assign, probes


@dataclass(frozen=True)
class _JoinJob:
    """Shared by every list-group task of step 3 (the rows are read by fancy indexing)."""

    prep: Prepared
    codes: np.ndarray
    width: int
    budget_mib: float


@dataclass(frozen=True)
class ListGroup:
    """Consecutive lists of one task: list ``l``'s members are
    ``members[member_ptr[l]:member_ptr[l + 1]]`` (row ids by label, then id) and the anchors
    probing it ``queries[query_ptr[l]:query_ptr[l + 1]]`` (row ids, ascending)."""

    members: np.ndarray
    member_ptr: np.ndarray
    queries: np.ndarray
    query_ptr: np.ndarray


def _join_group(job: _JoinJob, group: ListGroup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(anchor rows, partial keys, partial rows)``: the group's running lists."""
    prep, codes, terms = job.prep, job.codes, job.prep.terms
    dim, itemsize = prep.x.shape[1], prep.x.itemsize
    # The group's anchors (ascending) and each one's position, without sorting.
    mark = np.zeros(len(codes), dtype=bool)
    mark[group.queries] = True
    anchors = np.flatnonzero(mark)
    position = np.cumsum(mark, dtype=np.int32 if len(mark) < 2**31 else np.int64) - 1
    del mark
    best_v = np.full((len(anchors), job.width), np.inf)
    best_j = np.full((len(anchors), job.width), -1, dtype=np.int64)
    # The group's anchor rows are gathered once if a quarter of the budget holds them.
    reader = _Reader(prep)
    held = reader.rows(anchors) if len(anchors) <= rows_per_block(dim * itemsize, job.budget_mib / 4) else None
    member_chunk = min(MEMBER_CHUNK, rows_per_block(dim * itemsize * 2, job.budget_mib / 4))
    for lst in range(len(group.member_ptr) - 1):
        members = group.members[group.member_ptr[lst]:group.member_ptr[lst + 1]]
        queries = group.queries[group.query_ptr[lst]:group.query_ptr[lst + 1]]
        if len(members) == 0 or len(queries) == 0:
            continue
        q_pos = position[queries]
        for m0 in range(0, len(members), member_chunk):
            m_ids = members[m0:m0 + member_chunk]
            m_rows = reader.rows(m_ids)
            m_labels = codes[m_ids]  # sorted: lists hold their members by (label, row)
            # Tile (+ the query rows and their centring copy) within half the budget.
            step = rows_per_block(len(m_ids) * itemsize + dim * itemsize * 2, job.budget_mib / 2)
            for q0 in range(0, len(queries), step):
                q_ids = queries[q0:q0 + step]
                pos = q_pos[q0:q0 + step]
                q_rows = held[pos] if held is not None else reader.rows(q_ids)
                g = q_rows @ m_rows.T
                q_labels = codes[q_ids]
                negatives_tile(g, terms[q_ids], terms[m_ids], np.searchsorted(m_labels, q_labels, "left"),
                               np.searchsorted(m_labels, q_labels, "right"), pos, m_ids, best_v, best_j)
    del position
    release_mapped_pages(prep.x)
    # Partial lists travel compact (float32 keys, int32 rows): the driver merges them in a
    # fixed order under the same (key, row) order, so the result stays deterministic.
    id_type = np.int32 if len(codes) < 2**31 else np.int64
    return anchors.astype(id_type), best_v.astype(np.float32), best_j.astype(id_type)


# -- the driver ------------------------------------------------------------------------------


def _phase(progress: Progress | None, index: int, count: int) -> Progress | None:
    """Progress of phase ``index`` of ``count`` equal phases."""
    if progress is None:
        return None
    scale = 1_000_000

    def report(done: int, total: int) -> None:
        progress(index * scale + (scale * done) // max(1, total), count * scale)

    return report


def list_groups(member_ptr: np.ndarray, members: np.ndarray, query_ptr: np.ndarray, queries: np.ndarray,
                tasks: int = GROUP_TASKS) -> tuple[list[ListGroup], list[int]]:
    """Cut the lists into about ``tasks`` runs of consecutive lists of similar work
    (members × probing anchors); also each run's work. Groups are views of the tables."""
    work = np.diff(member_ptr) * np.diff(query_ptr)
    target = max(1, int(work.sum()) // max(1, tasks))
    groups: list[ListGroup] = []
    weights: list[int] = []
    start, acc = 0, 0
    for t in range(len(work)):
        acc += int(work[t])
        if acc >= target or t == len(work) - 1:
            m0, m1, q0, q1 = member_ptr[start], member_ptr[t + 1], query_ptr[start], query_ptr[t + 1]
            groups.append(ListGroup(members=members[m0:m1], member_ptr=member_ptr[start:t + 2] - m0,
                                    queries=queries[q0:q1], query_ptr=query_ptr[start:t + 2] - q0))
            weights.append(max(1, acc))
            start, acc = t + 1, 0
    return groups, weights


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
    engine: Engine | None = None,
    workers: int | None = None,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    progress: Progress | None = None,
    centroids: np.ndarray | None = None,
) -> IvfJoin:
    """Up to ``candidates`` (default ``k``) nearest negatives of each anchor (sorted row ids)
    among the members of its ``nprobe`` nearest lists of ``nlist`` (k-means, seed ``seed``;
    or the given ``centroids``, in the centred space of ``prep``).

    With ``nprobe = nlist`` every pair is compared: the result is the exact scan's up to
    key rounding. Memory: the O(n) list tables on the driver, and per task its lists'
    ids, its anchors' partial lists and tiles within ``budget_mib``; the rows are read from
    ``prep.x`` (memory-mapped or path-backed) by fancy indexing, never copied whole.
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    codes = np.ascontiguousarray(labels, dtype=np.int64)
    n, dim = prep.x.shape
    width = max(k, candidates or k)
    runner = engine if engine is not None else LocalEngine(workers)
    started = time.perf_counter()
    if centroids is None:
        centroids = train_centroids(prep, nlist, seed=seed, threads=workers)
    trained = time.perf_counter()
    nlist = len(centroids)
    nprobe = int(max(1, min(nprobe, nlist)))
    centroid_sq = np.einsum("ij,ij->i", centroids, centroids).astype(np.float64)
    is_anchor = np.zeros(n, dtype=bool)
    is_anchor[anchors] = True
    step = rows_per_block((nlist + dim * 2) * prep.x.itemsize, budget_mib / 4)
    bounds = [(a, min(n, a + step)) for a in range(0, n, step)]
    assign_job = _AssignJob(prep, centroids, centroid_sq, is_anchor, nprobe)
    assign = np.empty(n, dtype=np.int32)
    probes = np.empty((len(anchors), nprobe), dtype=np.int16 if nlist < 2**15 else np.int32)
    filled = 0
    for (a, b), (part_assign, part_probes) in zip(bounds, runner.map(
            _assign_block, runner.share(assign_job), bounds, weights=[b - a for a, b in bounds],
            progress=_phase(progress, 0, 2))):
        assign[a:b] = part_assign
        probes[filled:filled + len(part_probes)] = part_probes
        filled += len(part_probes)
    del assign_job
    assigned = time.perf_counter()
    id_type = np.int32 if n < 2**31 else np.int64  # ids held per (anchor, probe): keep them small
    # Each list's members by (label, row): a query's own label is one run of columns.
    by_label = np.lexsort((codes, assign)).astype(id_type)
    members, member_ptr = bucket_rows(assign[by_label].reshape(-1, 1), nlist, by_label)
    del by_label
    # Anchor ids are ascending, so each list's probing anchors come out ascending too.
    queries, query_ptr = bucket_rows(probes, nlist, anchors.astype(id_type))
    del probes, assign
    groups, weights = list_groups(member_ptr, members, query_ptr, queries)
    best_v = np.full((len(anchors), width), np.inf, dtype=np.float32)
    best_j = np.full((len(anchors), width), -1, dtype=np.int64)
    shared = runner.share(_JoinJob(prep, codes, width, budget_mib))
    report = _phase(progress, 1, 2)
    total, done = sum(weights), 0
    for first in range(0, len(groups), IN_FLIGHT):
        window = slice(first, first + IN_FLIGHT)
        offset = done

        def window_progress(part: int, _: int, offset: int = offset) -> None:
            if report is not None:
                report(offset + part, total)

        for part_anchors, part_v, part_j in runner.map(_join_group, shared, groups[window], weights=weights[window],
                                                        progress=window_progress):
            merge_lists(best_v, best_j, np.searchsorted(anchors, part_anchors), part_v, part_j)
        done += sum(weights[window])
    pairs = int(np.dot(np.diff(member_ptr).astype(np.float64), np.diff(query_ptr).astype(np.float64)))
    seconds = (("train", trained - started), ("assign", assigned - trained), ("join", time.perf_counter() - assigned))
    return IvfJoin(rows=best_j, keys=best_v, complete=(best_j[:, :k] >= 0).all(axis=1), nlist=nlist, nprobe=nprobe,
                   list_sizes=np.diff(member_ptr), pairs=pairs, seconds=seconds)

