"""Exact blocked mining: GEMM tiles of anchors × all rows, masked by label and band, reduced
per anchor by the numba kernels in :mod:`embedkit.kernels`. Nothing n×n is ever held.

When the anchors are at least half the rows, a scan is a self-join and runs on the
symmetric schedule of the tile driver (:func:`embedkit.tiles.symmetric_tiles`): each tile
``X_I · X_Jᵀ`` of the upper triangle feeds the anchors of I row-wise and those of J
column-wise, half the GEMM work of scanning every anchor against every row. With fewer
anchors the one-sided scan is cheaper (``m · n`` products against ``n² / 2``): anchors are
cut into stripes of ``tile_rows``, each multiplied with column tiles of at most
``tile_cols`` rows (within the budget). Either way tasks are merged in order and states
are ordered by (key, row), so the answer does not depend on scheduling or engine.

The two schedules compute the same key expression from their tiles' products; they give
the same rows wherever BLAS's products are exact (integer-valued data, as in the tests'
tie cases) and otherwise can differ only between keys within BLAS's rounding of each
other (a few float32 ulps of ``‖a‖‖b‖``): BLAS does not return ``x_i·x_j`` and ``x_j·x_i``
(nor one product at two tile positions) bit for bit, so each schedule fixes its own grid.

Keys. Kernels compare a *key* monotone in the distance: ``v = ‖a‖² + ‖b‖² − 2a·b``
(clipped at 0), the squared Euclidean distance; for cosine the rows are L2-normalised
copies and the terms are 1, so ``v = 2·(1 − cos)``. :class:`Prepared` converts between
keys and reported distances (Euclidean ``‖a − b‖₂``, cosine distance ``1 − cos``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np

from embedkit.arrays import as_work_array, l2_normalized, mapped_file_guard
from embedkit.chunking import DEFAULT_BUDGET_MIB, rows_per_block
from embedkit.distances import Metric, centred_squared_norms, is_similarity
from embedkit.engines import Engine, Progress
from embedkit.kernels import (
    band_all_tile,
    band_closest_tile,
    nearest_negatives_tile,
    pairs_below_tile,
)
from embedkit.mapped import work_rows
from embedkit.sym_kernels import merge_heaps, sym_band_tile, sym_topk_tile
from embedkit.tiles import (
    TILE_COLS,
    SymTask,
    gram_tiles,
    run_stripes,
    run_symmetric,
    stripes,
    symmetric_block,
    symmetric_tasks,
    symmetric_tile_count,
    symmetric_tiles,
    tile_shape,
)

R = TypeVar("R")

TILE_ROWS = 256
NO_ROW = -1


@dataclass(frozen=True)
class Prepared:
    """Embeddings in the work dtype (normalised for cosine), the centre the kernels subtract
    (for Euclidean the mean row rounded to a power-of-two grid, ``None`` for cosine) and the key terms
    ``‖x − centre‖²`` in float64."""

    x: np.ndarray
    terms: np.ndarray
    metric: Metric
    centre: np.ndarray | None = None

    def rows(self, ids: np.ndarray | slice) -> np.ndarray:
        """Rows ``ids`` centred, C-contiguous, in the work dtype."""
        mapped_file_guard(self.x)()  # a file truncated under us: one error line, not SIGBUS
        block = np.asarray(self.x[ids])
        if self.centre is None:
            return np.ascontiguousarray(block)
        return np.ascontiguousarray(block - self.centre, dtype=self.x.dtype)

    def to_distance(self, keys: np.ndarray) -> np.ndarray:
        """Keys to reported distances (Euclidean, or cosine distance ``1 − cos``)."""
        keys = np.asarray(keys, dtype=np.float64)
        return keys / 2.0 if is_similarity(self.metric) else np.sqrt(np.maximum(keys, 0.0))

    def to_key(self, distances: np.ndarray | float) -> np.ndarray:
        """Reported distances to keys (``inf`` stays ``inf``)."""
        d = np.asarray(distances, dtype=np.float64)
        return 2.0 * d if is_similarity(self.metric) else np.where(np.isinf(d), np.inf, d * d)

    def pair_keys(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Keys of pairs ``(first[k], second[k])`` computed as the kernels do (same expansion)."""
        out = np.empty(len(first), dtype=np.float64)
        step = rows_per_block(self.x.shape[1] * self.x.itemsize * 2, DEFAULT_BUDGET_MIB)
        for start in range(0, len(first), step):
            a, b = first[start:start + step], second[start:start + step]
            dots = np.einsum("ij,ij->i", self.rows(a), self.rows(b)).astype(np.float64)
            out[start:start + step] = self.terms[a] + self.terms[b] - 2.0 * dots
        np.maximum(out, 0.0, out=out)
        out[first == second] = 0.0  # a row is at distance 0 from itself, whatever the rounding
        return out


def prepare(embeddings: np.ndarray, metric: Metric) -> Prepared:
    """A :class:`Prepared` view: no copy of C-contiguous float32/float64 Euclidean input
    (tiles are centred as they are used). A matrix mapped from a file stays path-backed
    (:mod:`embedkit.mapped`: jobs pickle by path; cosine rows are normalised per block as
    tasks read them, the same arithmetic row by row), so no full copy is made or shipped."""
    by_path = work_rows(embeddings, normalise=is_similarity(metric))
    if is_similarity(metric):
        x = by_path if by_path is not None else l2_normalized(embeddings)
        return Prepared(x, np.ones(len(x), dtype=np.float64), metric)  # type: ignore[arg-type]
    from embedkit.ranking import ranking_centre

    x = by_path if by_path is not None else as_work_array(embeddings)
    # The mean on a power-of-two grid at the data's spread: integer-valued rows stay exact
    # after centring, so equal distances give equal keys and ties go to the smaller row
    # whatever the tile a product came from.
    centre = ranking_centre(x)
    return Prepared(x, centred_squared_norms(x, centre), metric, centre.astype(x.dtype))


@dataclass(frozen=True)
class _Job:
    """What every stripe of one scan reads; shared with the workers once, never per task."""

    prep: Prepared
    codes: np.ndarray
    rows_t: int
    cols_t: int
    anchors: np.ndarray | None = None
    k: int = 0
    track_far: bool = False
    slots: Slots | None = None
    max_items: int = 0
    limit_key: float = 0.0


def _job(prep: Prepared, labels: np.ndarray, budget_mib: float, tile_rows: int, tile_cols: int,
         **fields: object) -> _Job:
    rows_t, cols_t = tile_shape(prep.x.itemsize, len(prep.x), budget_mib=budget_mib, rows=tile_rows, cols=tile_cols)
    return _Job(prep, np.ascontiguousarray(labels, dtype=np.int64), rows_t, cols_t, **fields)  # type: ignore[arg-type]


def _run(task: Callable[[_Job, tuple[int, int]], R], job: _Job, count: int, engine: Engine | None,
         workers: int | None, progress: Progress | None) -> list[R]:
    """Stripes of ``count`` anchors (or slots), each against every row, on the tile driver."""
    return run_stripes(task, job, stripes(count, job.rows_t), cost_per_row=len(job.prep.x), engine=engine,
                       workers=workers, progress=progress)


def nearest_negatives(
    prep: Prepared, labels: np.ndarray, anchors: np.ndarray, k: int, *, track_far: bool = False,
    budget_mib: float = DEFAULT_BUDGET_MIB, workers: int | None = None, engine: Engine | None = None,
    progress: Progress | None = None, tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact ``k`` nearest negatives (other label) of each anchor, and optionally the farthest.

    Returns ``(near_keys, near_rows, far_keys, far_rows)``: shapes ``(m, k)``, ``(m, k)``,
    ``(m,)``, ``(m,)``; keys ascending, ties to the smaller row; missing entries have key
    ``inf`` (``-inf`` for far) and row ``-1``.
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    n = len(prep.x)
    if not track_far and symmetric_pays(len(np.unique(anchors)), n):
        on = np.zeros(n, dtype=bool)
        on[anchors] = True
        keys, ids = symmetric_topk(prep, labels, on, k, budget_mib=budget_mib, workers=workers, engine=engine,
                                   progress=progress)
        return keys[anchors], ids[anchors], np.full(len(anchors), -np.inf), np.full(len(anchors), NO_ROW)
    job = _job(prep, labels, budget_mib, tile_rows, tile_cols, anchors=anchors, k=k, track_far=track_far)
    parts = _run(_nearest_stripe, job, len(anchors), engine, workers, progress)
    if not parts:
        return (np.empty((0, k)), np.empty((0, k), np.int64), np.empty(0), np.empty(0, np.int64))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]


def _nearest_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, ...]:
    x, terms, codes, k = job.prep.x, job.prep.terms, job.codes, job.k
    assert job.anchors is not None
    cols_t = job.cols_t
    ids = job.anchors[bounds[0]:bounds[1]]
    rows = job.prep.rows(ids)
    near_v = np.full((len(ids), k), np.inf)
    near_j = np.full((len(ids), k), NO_ROW, dtype=np.int64)
    far_v = np.full(len(ids), -np.inf)
    far_j = np.full(len(ids), NO_ROW, dtype=np.int64)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, centre=job.prep.centre):
        nearest_negatives_tile(tile, terms[ids], terms[col0:col1], codes[ids], codes[col0:col1],
                               col0, near_v, near_j, far_v, far_j, job.track_far)
    return near_v, near_j, far_v, far_j


@dataclass(frozen=True)
class Slots:
    """Anchor-positive pairs grouped by anchor: anchor ``rows[r]`` owns ``ptr[r]:ptr[r+1]``,
    sorted by ``low``; a negative with key ``low < v <= high`` is in the slot's band."""

    rows: np.ndarray
    ptr: np.ndarray
    low: np.ndarray
    high: np.ndarray


Band = Literal["semi-hard", "farther", "easy"]


def make_slots(prep: Prepared, anchors: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[Slots, np.ndarray]:
    """Slots for the bands ``low < d_an <= high``, given as distances (Euclidean ``‖a − n‖₂``,
    or cosine distance ``1 − cos``; ``inf`` = unbounded), grouped by anchor and sorted by
    ``low``; also the permutation applied. ``high`` must not decrease with ``low``."""
    return _slots_from_keys(anchors, prep.to_key(low), prep.to_key(high))


def positive_bands(prep: Prepared, anchors: np.ndarray, positives: np.ndarray, band: Band, *,
                   margin: float, squared: bool = False) -> tuple[Slots, np.ndarray]:
    """Slots around each (anchor, positive) pair's own distance ``d_ap``:

    - ``semi-hard``: ``d_ap < d_an <= d_ap + margin`` (FaceNet);
    - ``farther``: ``d_an > d_ap`` (TF-Addons' semi-hard search, no upper bound);
    - ``easy``: ``d_an > d_ap + margin`` (and never below ``d_ap``).

    With ``squared`` (Euclidean only) the margin is added to squared distances:
    ``d_ap² < d_an² <= d_ap² + margin``. ``d_ap`` is taken as the kernels compute it, so a
    negative at exactly the positive's distance is never in a band.
    """
    ap = prep.pair_keys(anchors, positives)
    shifted = ap + margin if squared else prep.to_key(prep.to_distance(ap) + margin)
    unbounded = np.full(len(ap), np.inf)
    if band == "semi-hard":
        return _slots_from_keys(anchors, ap, np.maximum(shifted, ap))
    if band == "farther":
        return _slots_from_keys(anchors, ap, unbounded)
    return _slots_from_keys(anchors, np.maximum(shifted, ap), unbounded)


def _slots_from_keys(anchors: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[Slots, np.ndarray]:
    """Group slot arrays by anchor and sort by ``low``; also return the permutation applied.

    ``high`` must be a non-decreasing function of ``low`` (true for every band used here),
    so within an anchor the slots in band for a key ``v`` are contiguous.
    """
    order = np.lexsort((high, low, anchors))
    a = anchors[order]
    rows, starts = np.unique(a, return_index=True)
    ptr = np.append(starts, len(a)).astype(np.int64)
    return Slots(rows.astype(np.int64), ptr, np.ascontiguousarray(low[order], dtype=np.float64),
                 np.ascontiguousarray(high[order], dtype=np.float64)), order


def band_closest(
    prep: Prepared, labels: np.ndarray, slots: Slots, *, budget_mib: float = DEFAULT_BUDGET_MIB,
    workers: int | None = None, engine: Engine | None = None, progress: Progress | None = None,
    tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per slot, the smallest negative key in its band ``(low, high]`` and its row
    (``inf``/``-1`` when the band holds no negative); exact, ties to the smaller row."""
    if symmetric_pays(len(slots.rows), len(prep.x)):
        return _symmetric_band(prep, labels, slots, emit=False, max_items=0, budget_mib=budget_mib,
                               workers=workers, engine=engine, progress=progress)  # type: ignore[return-value]
    job = _job(prep, labels, budget_mib, tile_rows, tile_cols, slots=slots)
    parts = _run(_band_closest_stripe, job, len(slots.rows), engine, workers, progress)
    if not parts:
        return np.empty(0), np.empty(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _stripe_slots(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """The anchors of a stripe of slots: ``(ids, first slot, ptr, low, high)``."""
    slots = job.slots
    assert slots is not None
    s0, s1 = slots.ptr[bounds[0]], slots.ptr[bounds[1]]
    ptr = slots.ptr[bounds[0]:bounds[1] + 1] - s0
    return slots.rows[bounds[0]:bounds[1]], int(s0), ptr, slots.low[s0:s1], slots.high[s0:s1]


def _band_closest_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    x, terms, codes = job.prep.x, job.prep.terms, job.codes
    cols_t = job.cols_t
    ids, _, ptr, low, high = _stripe_slots(job, bounds)
    best_v = np.full(len(low), np.inf)
    best_j = np.full(len(low), NO_ROW, dtype=np.int64)
    rows = job.prep.rows(ids)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, centre=job.prep.centre):
        band_closest_tile(tile, terms[ids], terms[col0:col1], codes[ids], codes[col0:col1],
                          col0, ptr, low, high, best_v, best_j)
    return best_v, best_j


def band_all(
    prep: Prepared, labels: np.ndarray, slots: Slots, *, max_items: int,
    budget_mib: float = DEFAULT_BUDGET_MIB, workers: int | None = None, engine: Engine | None = None,
    progress: Progress | None = None, tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (slot, negative row, key) with the key in the slot's band; at most ``max_items``
    (else :class:`TooMany`). Sorted by slot, then row."""
    if symmetric_pays(len(slots.rows), len(prep.x)):
        return _symmetric_band(prep, labels, slots, emit=True, max_items=max_items, budget_mib=budget_mib,
                               workers=workers, engine=engine, progress=progress)  # type: ignore[return-value]
    job = _job(prep, labels, budget_mib, tile_rows, tile_cols, slots=slots, max_items=max_items)
    return _merge_emitted(_run(_band_all_stripe, job, len(slots.rows), engine, workers, progress), max_items)


def _band_all_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, terms, codes = job.prep.x, job.prep.terms, job.codes
    cols_t = job.cols_t
    ids, s0, ptr, low, high = _stripe_slots(job, bounds)
    rows = job.prep.rows(ids)
    out = _Emitted(4096)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, centre=job.prep.centre):
        while True:
            count = band_all_tile(tile, terms[ids], terms[col0:col1], codes[ids], codes[col0:col1],
                                  col0, ptr, low, high, out.a, out.b, out.v, out.count)
            if out.fits(count, job.max_items):
                break
    return out.a[: out.count] + s0, out.b[: out.count], out.v[: out.count]


def pairs_below(
    prep: Prepared, labels: np.ndarray, limit: float, *, max_items: int,
    budget_mib: float = DEFAULT_BUDGET_MIB, workers: int | None = None, engine: Engine | None = None,
    progress: Progress | None = None, tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every negative pair ``i < j`` at distance ``d < limit`` (Euclidean, or cosine distance),
    sorted by ``(i, j)``, with ``d``.

    Pairs are selected on the tiles' keys; the distances returned are recomputed per pair
    from :meth:`Prepared.pair_keys`, because BLAS rounds a tile's products differently for
    different tile shapes and the reported figures must not depend on the tiling.
    """
    job = _job(prep, labels, budget_mib, tile_rows, tile_cols, max_items=max_items,
               limit_key=float(prep.to_key(limit)))
    first, second, _ = _merge_emitted(_run(_pairs_below_stripe, job, len(prep.x), engine, workers, progress),
                                      max_items)
    return first, second, prep.to_distance(prep.pair_keys(first, second))


def _merge_emitted(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   max_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stripes' emitted ``(first, second, key)`` items in one table sorted by ``(first, second)``;
    more than ``max_items`` in all is :class:`TooMany`."""
    first = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    if len(first) > max_items:
        raise TooMany(len(first))
    second = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    key = np.concatenate([p[2] for p in parts]) if parts else np.empty(0)
    order = np.lexsort((second, first))
    return first[order], second[order], key[order]


def _pairs_below_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, terms, codes = job.prep.x, job.prep.terms, job.codes
    cols_t = job.cols_t
    first, last = bounds
    rows = job.prep.rows(slice(first, last))
    out = _Emitted(4096)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, upper_from=first, centre=job.prep.centre):
        while True:
            count = pairs_below_tile(tile, terms[first:last], terms[col0:col1], codes[first:last],
                                     codes[col0:col1], first, col0, job.limit_key, out.a, out.b, out.v, out.count)
            if out.fits(count, job.max_items):
                break
    return out.a[: out.count], out.b[: out.count], out.v[: out.count]


# -- the symmetric schedule (self-joins) ------------------------------------------------------

#: Row id of an empty heap entry while scanning (last in (key, row) order); -1 once reported.
EMPTY_ID = np.iinfo(np.int64).max


def symmetric_pays(anchors: int, rows: int) -> bool:
    """Whether ``anchors`` of ``rows`` are better served by the symmetric schedule
    (``n² / 2`` products for every row at once) than one-sided (``anchors × n``)."""
    return rows > 1 and 2 * anchors > rows


@dataclass(frozen=True)
class _SymJob:
    """What every super-tile of one symmetric scan reads; shared with the workers once."""

    prep: Prepared
    codes: np.ndarray
    block: int
    on: np.ndarray | None = None
    k: int = 0
    ptr: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    emit: bool = False
    max_items: int = 0
    bound: np.ndarray | None = None


def symmetric_topk(
    prep: Prepared, codes: np.ndarray, on: np.ndarray, k: int, *, budget_mib: float = DEFAULT_BUDGET_MIB,
    workers: int | None = None, engine: Engine | None = None, progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row with ``on[row]``: the ``k`` smallest keys over the rows with another code, and
    those rows; shapes ``(n, k)``, ascending in (key, row), missing entries ``inf``/``-1``
    (rows not ``on`` are all missing). Pass distinct codes (``arange(n)``) for a plain k-NN
    (a row is never its own neighbour). One symmetric scan: ``n² / 2`` products."""
    n = len(prep.x)
    block = symmetric_block(prep.x.itemsize, budget_mib=budget_mib)
    job = _SymJob(prep, np.ascontiguousarray(codes, dtype=np.int64), block, on=np.ascontiguousarray(on, dtype=bool),
                  k=max(1, k))
    keys = np.full((n, job.k), np.inf)
    ids = np.full((n, job.k), EMPTY_ID, dtype=np.int64)
    tasks = symmetric_tasks(n, block)
    # Two rounds. The diagonal super-tiles first: afterwards every row's k-th key so far is an
    # upper bound of its final k-th key (those k rows exist), and the off-diagonal tasks
    # start their partial heaps from it: a partial heap starting empty would take about
    # k·ln(rows / k) entries per task, most of them thrown out again by the merge.
    rounds = [[t for t in tasks if t[0] == t[2]], [t for t in tasks if t[0] != t[2]]]
    total = sum(symmetric_tile_count(t, block) for t in tasks)
    done_before = 0
    for round_tasks in rounds:
        if not round_tasks:
            continue
        shown = None if progress is None else _offset_progress(progress, done_before, total)
        # Fold the partial heaps in task order (any order gives the same heaps: (key, row) is total).
        results = run_symmetric(_topk_task, job, round_tasks, block=block, engine=engine, workers=workers,
                                progress=shown)
        for (r0, r1, c0, c1), (rk, ri, ck, ci) in zip(round_tasks, results):
            merge_heaps(keys[r0:r1], ids[r0:r1], rk, ri)
            if ck is not None:
                merge_heaps(keys[c0:c1], ids[c0:c1], ck, ci)
        done_before += sum(symmetric_tile_count(t, block) for t in round_tasks)
        job = replace(job, bound=np.ascontiguousarray(keys[:, 0]))  # heap roots: the k-th key so far
    order = np.lexsort((ids, keys), axis=1)
    keys = np.take_along_axis(keys, order, axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    ids[ids == EMPTY_ID] = NO_ROW
    return keys[:, :k], ids[:, :k]


def _offset_progress(progress: Progress, before: int, total: int) -> Progress:
    return lambda done, _total: progress(before + done, total)


def _topk_task(job: _SymJob, task: SymTask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Partial heaps of one super-tile: its rows' and (off the diagonal) its columns'."""
    r0, r1, c0, c1 = task
    terms, codes, on = job.prep.terms, job.codes, job.on
    assert on is not None
    rk = np.full((r1 - r0, job.k), np.inf)
    ri = np.full((r1 - r0, job.k), EMPTY_ID, dtype=np.int64)
    diagonal = r0 == c0
    ck = rk if diagonal else np.full((c1 - c0, job.k), np.inf)
    ci = ri if diagonal else np.full((c1 - c0, job.k), EMPTY_ID, dtype=np.int64)
    bound = job.bound if job.bound is not None else np.full(len(on), np.inf)
    for i0, i1, j0, j1, tile in symmetric_tiles(job.prep.x, task, job.block, centre=job.prep.centre):
        sym_topk_tile(tile, i0 == j0, terms[i0:i1], terms[j0:j1], codes[i0:i1], codes[j0:j1], i0, j0,
                      rk[i0 - r0:i1 - r0], ri[i0 - r0:i1 - r0], on[i0:i1], bound[i0:i1],
                      ck[j0 - c0:j1 - c0], ci[j0 - c0:j1 - c0], on[j0:j1], bound[j0:j1])
    return (rk, ri, None, None) if diagonal else (rk, ri, ck, ci)


def _row_ptr(slots: Slots, n: int) -> np.ndarray:
    """Slot ranges by row: row ``a`` owns ``ptr[a]:ptr[a + 1]`` (empty for rows without slots)."""
    counts = np.zeros(n + 1, dtype=np.int64)
    counts[slots.rows + 1] = np.diff(slots.ptr)
    return np.cumsum(counts)


def _symmetric_band(
    prep: Prepared, labels: np.ndarray, slots: Slots, *, emit: bool, max_items: int, budget_mib: float,
    workers: int | None, engine: Engine | None, progress: Progress | None,
) -> tuple[np.ndarray, ...]:
    """:func:`band_closest` (``emit`` false) or :func:`band_all` on the symmetric schedule."""
    n = len(prep.x)
    block = symmetric_block(prep.x.itemsize, budget_mib=budget_mib)
    job = _SymJob(prep, np.ascontiguousarray(labels, dtype=np.int64), block, ptr=_row_ptr(slots, n),
                  low=slots.low, high=slots.high, emit=emit, max_items=max_items)
    tasks = symmetric_tasks(n, block)
    parts = run_symmetric(_band_task, job, tasks, block=block, engine=engine, workers=workers, progress=progress)
    if emit:
        return _merge_emitted(list(parts), max_items)  # type: ignore[arg-type]
    best_v = np.full(len(slots.low), np.inf)
    best_j = np.full(len(slots.low), NO_ROW, dtype=np.int64)
    for first, part_v, part_j in parts:  # type: ignore[misc]
        gv, gj = best_v[first:first + len(part_v)], best_j[first:first + len(part_v)]
        better = (part_j >= 0) & ((part_v < gv) | ((part_v == gv) & (part_j < gj)))
        gv[better] = part_v[better]
        gj[better] = part_j[better]
    return best_v, best_j


def _band_task(job: _SymJob, task: SymTask) -> tuple[np.ndarray, ...] | tuple[int, np.ndarray, np.ndarray]:
    """One super-tile of a band search: the best per slot of its rows and columns (the slots
    ``ptr[r0]:ptr[c1]``), or every item in band."""
    r0, _, _, c1 = task
    ptr, low, high = job.ptr, job.low, job.high
    assert ptr is not None and low is not None and high is not None
    terms, codes = job.prep.terms, job.codes
    first = int(ptr[r0])
    best_v = np.full(0 if job.emit else int(ptr[c1]) - first, np.inf)
    best_j = np.full(len(best_v), NO_ROW, dtype=np.int64)
    out = _Emitted(4096 if job.emit else 0)
    for i0, i1, j0, j1, tile in symmetric_tiles(job.prep.x, task, job.block, centre=job.prep.centre):
        while True:
            count = sym_band_tile(tile, i0 == j0, terms[i0:i1], terms[j0:j1], codes[i0:i1], codes[j0:j1], i0, j0,
                                  ptr, low, high, best_v, best_j, first, job.emit, out.a, out.b, out.v, out.count)
            if not job.emit or out.fits(count, job.max_items):
                break
    if job.emit:
        return out.a[: out.count], out.b[: out.count], out.v[: out.count]
    return first, best_v, best_j


class TooMany(Exception):
    """More items than the caller allowed (converted to an OptionError by the strategies)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class _Emitted:
    """Growable output buffers for the emitting kernels (a tile is rerun after growing)."""

    def __init__(self, capacity: int) -> None:
        self.a = np.empty(capacity, dtype=np.int64)
        self.b = np.empty(capacity, dtype=np.int64)
        self.v = np.empty(capacity, dtype=np.float64)
        self.count = 0

    def fits(self, count: int, max_items: int) -> bool:
        """Accept ``count`` if it fits; else grow (the caller reruns the tile) or give up."""
        if count <= len(self.a):
            self.count = count
            return True
        if count > max_items:
            raise TooMany(count)
        size = max(count, 2 * len(self.a))
        for name in ("a", "b", "v"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)
        return False
