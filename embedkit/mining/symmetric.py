"""Exact mining on the symmetric schedule of the tile driver (self-joins).

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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from embedkit.engines import Progress
from embedkit.execution import Execution
from embedkit.mining.keys import NO_ROW, Emitted, Prepared, Slots, merge_emitted
from embedkit.sym_kernels import DENSE_K, merge_heaps, sym_band_tile, sym_topk_tile
from embedkit.sym_select import merge_selections, settle_selections, sort_rows, sym_select_tile
from embedkit.tiles import (
    SymTask,
    run_symmetric,
    symmetric_block,
    symmetric_tasks,
    symmetric_tile_count,
    symmetric_tiles,
)

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
    prep: Prepared, codes: np.ndarray, on: np.ndarray, k: int, *, execution: Execution = Execution(),
) -> tuple[np.ndarray, np.ndarray]:
    """Per row with ``on[row]``: the ``k`` smallest keys over the rows with another code, and
    those rows; shapes ``(n, k)``, ascending in (key, row), missing entries ``inf``/``-1``
    (rows not ``on`` are all missing). Pass distinct codes (``arange(n)``) for a plain k-NN
    (a row is never its own neighbour). One symmetric scan: ``n² / 2`` products."""
    n = len(prep.x)
    block = symmetric_block(prep.x.itemsize, budget_mib=execution.budget_mib)
    job = _SymJob(prep, np.ascontiguousarray(codes, dtype=np.int64), block, on=np.ascontiguousarray(on, dtype=bool),
                  k=max(1, k))
    # Large k (eval's label k-NN): buffered selections instead of heaps (sym_kernels explains).
    task_fn, merge = (_select_task, _merge_selected) if job.k > DENSE_K else (_topk_task, _merge_heaps)
    keys = np.full((n, job.k), np.inf)
    ids = np.full((n, job.k), EMPTY_ID, dtype=np.int64)
    tasks = symmetric_tasks(n, block)
    # Two rounds. The diagonal super-tiles first: afterwards every row's k-th key so far is an
    # upper bound of its final k-th key (those k rows exist), and the off-diagonal tasks
    # start their partial heaps from it: a partial heap starting empty would take about
    # k·ln(rows / k) entries per task, most of them thrown out again by the merge.
    rounds = [[t for t in tasks if t[0] == t[2]], [t for t in tasks if t[0] != t[2]]]
    if task_fn is _select_task and len(tasks) > 1:
        # With large k, a third round: the super-tiles next to the diagonal second, so the
        # rest start from a bound over about three super-tiles of rows, not one (about
        # k · side / seen candidates per anchor and task: ~40% fewer in all).
        side = tasks[0][1] - tasks[0][0]
        rounds = [rounds[0], [t for t in rounds[1] if t[2] - t[0] == side],
                  [t for t in rounds[1] if t[2] - t[0] > side]]
    total = sum(symmetric_tile_count(t, block) for t in tasks)
    done_before = 0
    for round_tasks in rounds:
        if not round_tasks:
            continue
        progress = execution.progress
        shown = None if progress is None else _offset_progress(progress, done_before, total)
        # Fold the partial heaps in task order (any order gives the same heaps: (key, row) is total).
        results = run_symmetric(task_fn, job, round_tasks, block=block,
                                execution=replace(execution, progress=shown))
        for (r0, r1, c0, c1), (row_part, col_part) in zip(round_tasks, results):
            merge(keys[r0:r1], ids[r0:r1], row_part)
            if col_part is not None:
                merge(keys[c0:c1], ids[c0:c1], col_part)
        done_before += sum(symmetric_tile_count(t, block) for t in round_tasks)
        # The k-th key so far (heap roots; a selection's largest): a bound of the final one.
        bound = keys[:, 0] if task_fn is _topk_task else keys.max(axis=1)
        job = replace(job, bound=np.ascontiguousarray(bound))
    sort_rows(keys, ids)  # (key, row) order
    ids[ids == EMPTY_ID] = NO_ROW
    return keys[:, :k], ids[:, :k]


#: A large-k state holds up to k + SELECT_SLACK·k entries before it is cut back to k.
SELECT_SLACK = 0.5
def _offset_progress(progress: Progress, before: int, total: int) -> Progress:
    return lambda done, _total: progress(before + done, total)


def _merge_heaps(keys: np.ndarray, ids: np.ndarray, part: tuple[np.ndarray, np.ndarray]) -> None:
    merge_heaps(keys, ids, *part)


def _merge_selected(keys: np.ndarray, ids: np.ndarray, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    merge_selections(keys, ids, *part)


Part = tuple[np.ndarray, ...]


def _select_task(job: _SymJob, task: SymTask) -> tuple[Part, Part | None]:
    """Partial selections of one super-tile (its rows' and, off the diagonal, its columns'):
    ``(keys, ids, count)``, each state cut to its k smallest (capacity ``k + SELECT_SLACK·k``
    while scanning)."""
    r0, r1, c0, c1 = task
    terms, codes, on = job.prep.terms, job.codes, job.on
    assert on is not None
    k = job.k
    bound = job.bound if job.bound is not None else np.full(len(on), np.inf)
    diagonal = r0 == c0

    def state(a0: int, a1: int) -> tuple[np.ndarray, ...]:
        thr = np.where(on[a0:a1], bound[a0:a1], -np.inf)
        cap = k + max(8, int(SELECT_SLACK * k))
        return (np.full((a1 - a0, cap), np.inf), np.full((a1 - a0, cap), EMPTY_ID, dtype=np.int64),
                np.zeros(a1 - a0, dtype=np.int64), thr, np.full(a1 - a0, EMPTY_ID, dtype=np.int64))

    rows = state(r0, r1)
    cols = rows if diagonal else state(c0, c1)
    for i0, i1, j0, j1, tile in symmetric_tiles(job.prep.x, task, job.block, centre=job.prep.centre):
        sym_select_tile(tile, i0 == j0, terms[i0:i1], terms[j0:j1], codes[i0:i1], codes[j0:j1], i0, j0,
                        *(a[i0 - r0:i1 - r0] for a in rows), *(a[j0 - c0:j1 - c0] for a in cols), k)
    parts = []
    for keys, ids, count, _, _ in (rows,) if diagonal else (rows, cols):
        settle_selections(keys, ids, count, k)
        parts.append((np.ascontiguousarray(keys[:, :k]), np.ascontiguousarray(ids[:, :k]), count))
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _topk_task(job: _SymJob, task: SymTask) -> tuple[Part, Part | None]:
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
    return ((rk, ri), None) if diagonal else ((rk, ri), (ck, ci))


def _row_ptr(slots: Slots, n: int) -> np.ndarray:
    """Slot ranges by row: row ``a`` owns ``ptr[a]:ptr[a + 1]`` (empty for rows without slots)."""
    counts = np.zeros(n + 1, dtype=np.int64)
    counts[slots.rows + 1] = np.diff(slots.ptr)
    return np.cumsum(counts)


def symmetric_band(
    prep: Prepared, labels: np.ndarray, slots: Slots, *, emit: bool, max_items: int, execution: Execution,
) -> tuple[np.ndarray, ...]:
    """:func:`band_closest` (``emit`` false) or :func:`band_all` on the symmetric schedule."""
    n = len(prep.x)
    block = symmetric_block(prep.x.itemsize, budget_mib=execution.budget_mib)
    job = _SymJob(prep, np.ascontiguousarray(labels, dtype=np.int64), block, ptr=_row_ptr(slots, n),
                  low=slots.low, high=slots.high, emit=emit, max_items=max_items)
    tasks = symmetric_tasks(n, block)
    parts = run_symmetric(_band_task, job, tasks, block=block, execution=execution)
    if emit:
        return merge_emitted(list(parts), max_items)  # type: ignore[arg-type]
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
    out = Emitted(4096 if job.emit else 0)
    for i0, i1, j0, j1, tile in symmetric_tiles(job.prep.x, task, job.block, centre=job.prep.centre):
        while True:
            count = sym_band_tile(tile, i0 == j0, terms[i0:i1], terms[j0:j1], codes[i0:i1], codes[j0:j1], i0, j0,
                                  ptr, low, high, best_v, best_j, first, job.emit, out.a, out.b, out.v, out.count)
            if not job.emit or out.fits(count, job.max_items):
                break
    if job.emit:
        return out.a[: out.count], out.b[: out.count], out.v[: out.count]
    return first, best_v, best_j
