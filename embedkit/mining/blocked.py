"""Exact blocked mining: GEMM tiles of anchors × all rows, masked by label and band, reduced
per anchor by the numba kernels in :mod:`embedkit.kernels`. Nothing n×n is ever held.

When the anchors are at least half the rows a scan is a self-join and runs on the symmetric
schedule (:mod:`embedkit.mining.symmetric`). With fewer anchors the one-sided scan is
cheaper (``m · n`` products against ``n² / 2``): anchors are cut into stripes of
``tile_rows``, each multiplied with column tiles of at most ``tile_cols`` rows (within the
budget), merged in order, states ordered by (key, row), so the answer does not depend on
scheduling or engine. Keys and bands: :mod:`embedkit.mining.keys`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from embedkit.execution import Execution
from embedkit.kernels import (
    band_all_tile,
    band_closest_tile,
    nearest_negatives_tile,
    pairs_below_tile,
)
from embedkit.mining.keys import (
    NO_ROW,
    Emitted,
    Prepared,
    Slots,
    merge_emitted,
)
from embedkit.mining.symmetric import symmetric_band, symmetric_pays, symmetric_topk
from embedkit.tiles import (
    TILE_COLS,
    gram_tiles,
    run_stripes,
    stripes,
    tile_shape,
)

R = TypeVar("R")

TILE_ROWS = 256


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


def _run(task: Callable[[_Job, tuple[int, int]], R], job: _Job, count: int, execution: Execution) -> list[R]:
    """Stripes of ``count`` anchors (or slots), each against every row, on the tile driver."""
    return run_stripes(task, job, stripes(count, job.rows_t), cost_per_row=len(job.prep.x), execution=execution)


def nearest_negatives(
    prep: Prepared, labels: np.ndarray, anchors: np.ndarray, k: int, *, track_far: bool = False,
    symmetric: bool | None = None, execution: Execution = Execution(), tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact ``k`` nearest negatives (other label) of each anchor, and optionally the farthest.

    Returns ``(near_keys, near_rows, far_keys, far_rows)``: shapes ``(m, k)``, ``(m, k)``,
    ``(m,)``, ``(m,)``; keys ascending, ties to the smaller row; missing entries have key
    ``inf`` (``-inf`` for far) and row ``-1``. ``symmetric`` picks the schedule (``None``:
    the symmetric one when it pays, see :func:`~embedkit.mining.symmetric.symmetric_pays`;
    the far row needs the one-sided scan).
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    n = len(prep.x)
    if not track_far and _symmetric(symmetric, len(np.unique(anchors)), n):
        on = np.zeros(n, dtype=bool)
        on[anchors] = True
        keys, ids = symmetric_topk(prep, labels, on, k, execution=execution)
        return keys[anchors], ids[anchors], np.full(len(anchors), -np.inf), np.full(len(anchors), NO_ROW)
    job = _job(prep, labels, execution.budget_mib, tile_rows, tile_cols, anchors=anchors, k=k, track_far=track_far)
    parts = _run(_nearest_stripe, job, len(anchors), execution)
    if not parts:
        return (np.empty((0, k)), np.empty((0, k), np.int64), np.empty(0), np.empty(0, np.int64))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]


def _symmetric(asked: bool | None, anchors: int, rows: int) -> bool:
    return symmetric_pays(anchors, rows) if asked is None else asked


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


def band_closest(
    prep: Prepared, labels: np.ndarray, slots: Slots, *, symmetric: bool | None = None,
    execution: Execution = Execution(), tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per slot, the smallest negative key in its band ``(low, high]`` and its row
    (``inf``/``-1`` when the band holds no negative); exact, ties to the smaller row.
    ``symmetric``: the schedule, as in :func:`nearest_negatives`."""
    if _symmetric(symmetric, len(slots.rows), len(prep.x)):
        return symmetric_band(prep, labels, slots, emit=False, max_items=0,
                              execution=execution)  # type: ignore[return-value]
    job = _job(prep, labels, execution.budget_mib, tile_rows, tile_cols, slots=slots)
    parts = _run(_band_closest_stripe, job, len(slots.rows), execution)
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
    prep: Prepared, labels: np.ndarray, slots: Slots, *, max_items: int, symmetric: bool | None = None,
    execution: Execution = Execution(), tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (slot, negative row, key) with the key in the slot's band; at most ``max_items``
    (else :class:`TooMany`). Sorted by slot, then row. ``symmetric``: the schedule, as in
    :func:`nearest_negatives`."""
    if _symmetric(symmetric, len(slots.rows), len(prep.x)):
        return symmetric_band(prep, labels, slots, emit=True, max_items=max_items,
                              execution=execution)  # type: ignore[return-value]
    job = _job(prep, labels, execution.budget_mib, tile_rows, tile_cols, slots=slots, max_items=max_items)
    return merge_emitted(_run(_band_all_stripe, job, len(slots.rows), execution), max_items)


def _band_all_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, terms, codes = job.prep.x, job.prep.terms, job.codes
    cols_t = job.cols_t
    ids, s0, ptr, low, high = _stripe_slots(job, bounds)
    rows = job.prep.rows(ids)
    out = Emitted(4096)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, centre=job.prep.centre):
        while True:
            count = band_all_tile(tile, terms[ids], terms[col0:col1], codes[ids], codes[col0:col1],
                                  col0, ptr, low, high, out.a, out.b, out.v, out.count)
            if out.fits(count, job.max_items):
                break
    return out.a[: out.count] + s0, out.b[: out.count], out.v[: out.count]


def pairs_below(
    prep: Prepared, labels: np.ndarray, limit: float, *, max_items: int,
    execution: Execution = Execution(), tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every negative pair ``i < j`` at distance ``d < limit`` (Euclidean, or cosine distance),
    sorted by ``(i, j)``, with ``d``.

    Pairs are selected on the tiles' keys; the distances returned are recomputed per pair
    from :meth:`Prepared.pair_keys`, because BLAS rounds a tile's products differently for
    different tile shapes and the reported figures must not depend on the tiling.
    """
    job = _job(prep, labels, execution.budget_mib, tile_rows, tile_cols, max_items=max_items,
               limit_key=float(prep.to_key(limit)))
    first, second, _ = merge_emitted(_run(_pairs_below_stripe, job, len(prep.x), execution), max_items)
    return first, second, prep.to_distance(prep.pair_keys(first, second))


def _pairs_below_stripe(job: _Job, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, terms, codes = job.prep.x, job.prep.terms, job.codes
    cols_t = job.cols_t
    first, last = bounds
    rows = job.prep.rows(slice(first, last))
    out = Emitted(4096)
    for col0, col1, tile in gram_tiles(rows, x, cols_t, upper_from=first, centre=job.prep.centre):
        while True:
            count = pairs_below_tile(tile, terms[first:last], terms[col0:col1], codes[first:last],
                                     codes[col0:col1], first, col0, job.limit_key, out.a, out.b, out.v, out.count)
            if out.fits(count, job.max_items):
                break
    return out.a[: out.count], out.b[: out.count], out.v[: out.count]


