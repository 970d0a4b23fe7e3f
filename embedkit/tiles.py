"""The one stripe × tile driver behind every exact pairwise scan (all-pairs losses, exact
mining, the label k-NN of eval).

A scan cuts its anchors into *stripes* of ``rows`` anchors; each stripe is an independent
task on the engine (local threads or Dask workers) that multiplies its rows with column
*tiles* of at most ``cols`` rows (one BLAS GEMM each) and hands every tile to a numba
kernel. Results come back in stripe order, so figures do not depend on scheduling or
engine. Working memory per worker: one ``rows × cols`` tile plus the stripe's own state;
``cols`` is bounded by the memory budget. Nothing n×n is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from embedkit.arrays import mapped_file_guard
from embedkit.chunking import DEFAULT_BUDGET_MIB, rows_per_block
from embedkit.execution import Execution

R = TypeVar("R")

#: Columns of one GEMM tile at most (a 2048-row tile of a 128-d float32 matrix is 1 MiB).
TILE_COLS = 2048


def tile_shape(itemsize: int, total: int, *, budget_mib: float = DEFAULT_BUDGET_MIB, rows: int,
               cols: int = TILE_COLS) -> tuple[int, int]:
    """``(rows, cols)`` of one GEMM tile: ``rows`` as asked, ``cols`` within ``budget_mib``
    (the tile holds ``rows × cols`` values of ``itemsize`` bytes) and ``total``.

    >>> tile_shape(4, 10**6, rows=256)
    (256, 2048)
    >>> tile_shape(4, 10**6, budget_mib=0.5, rows=256)
    (256, 512)
    """
    rows = max(1, rows)
    return rows, max(1, min(cols, rows_per_block(rows * itemsize, budget_mib), max(1, total)))


def stripes(count: int, size: int) -> list[tuple[int, int]]:
    """Half-open stripes ``(first, last)`` of ``size`` covering ``range(count)``.

    >>> stripes(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    return [(s, min(count, s + size)) for s in range(0, count, size)]


def run_stripes(task: Callable[[Any, tuple[int, int]], R], job: Any, bounds: Sequence[tuple[int, int]], *,
                execution: Execution, cost_per_row: int = 1, weights: list[int] | None = None) -> list[R]:
    """``task(job, stripe)`` for every stripe on the execution's engine, results in stripe
    order. ``job`` is shared with the workers once. Progress weighs a stripe by ``weights``
    or else by its rows × ``cost_per_row``."""
    if weights is None:
        weights = [(last - first) * max(1, cost_per_row) for first, last in bounds]
    engine = execution.engine
    return list(engine.map(task, engine.share(job), list(bounds), weights=weights, progress=execution.progress))


def gram_tiles(
    rows: np.ndarray, x: np.ndarray, tile_cols: int, *, upper_from: int | None = None,
    centre: np.ndarray | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(col0, col1, rows · (x[col0:col1] − centre)ᵀ)`` for column tiles of ``x``.

    ``rows`` must already be centred by the caller. Centring is what keeps
    ``‖a‖² + ‖b‖² − 2a·b`` accurate in float32 when the rows share a large common offset
    (the products would otherwise be ~‖offset‖² and their rounding swamp the distances);
    the column tile is centred into a reused buffer, so no centred copy of ``x`` is made.
    With ``upper_from = i0`` (``rows`` being rows ``i0, ...``) only the tiles holding a
    pair ``i < j`` are produced. A tile is overwritten by the next: consume it first.
    """
    n = len(x)
    dtype = np.result_type(rows.dtype, x.dtype)
    still_whole = mapped_file_guard(x)  # a truncated memory-mapped file: one error, not SIGBUS
    buffer = np.empty((len(rows), tile_cols), dtype=dtype)
    columns = np.empty((tile_cols, x.shape[1]), dtype=dtype) if centre is not None else None
    start = 0 if upper_from is None else upper_from - upper_from % tile_cols
    for col0 in range(start, n, tile_cols):
        col1 = min(n, col0 + tile_cols)
        if upper_from is not None and col1 <= upper_from + 1:
            continue
        tile = buffer[:, : col1 - col0]
        still_whole()
        block = x[col0:col1]
        if columns is not None:
            block = np.subtract(block, centre, out=columns[: col1 - col0])
        np.matmul(rows, block.T, out=tile)
        yield col0, col1, tile


# -- the symmetric schedule for self-joins ---------------------------------------------------
# A self-join compares a set with itself and d(i, j) = d(j, i): one tile X_I · X_Jᵀ of the
# upper triangle (block rows I <= J) serves the anchors of I row-wise *and* those of J
# column-wise, so each pair is multiplied once (half the GEMM work of the one-sided scan).
#
# Canonical key rule: the product of a pair i < j is the entry (i, j) of the tile of the
# fixed block grid whose rows hold i (on a diagonal tile, the upper entry r < c); the
# other side reads the same number. BLAS does not give x_i·x_j and x_j·x_i (nor the same
# product at another tile position) bit for bit, so the grid is part of the definition:
# ``block`` depends only on the item size and the budget, never on workers or engine.
#
# Tasks are *super-tiles*: rows [r0, r1) × columns [c0, c1) of the block grid with
# r0 <= c0 (a diagonal super-tile, r0 == c0, does only its blocks J >= I). A task returns
# partial per-anchor state for its rows and for its columns (one span when diagonal); the
# caller folds the partials in task order. Each anchor gets one partial per super-tile of
# its super-row and super-column: about ``count / (super × block)`` merges, not one per tile.

#: Rows (and columns) of one symmetric GEMM tile at most: 1024 × 1024 float32 is 4 MiB.
SYM_BLOCK = 1024
#: Blocks per side of one symmetric task (a super-tile), at the largest block.
SYM_SUPER_ROWS = 16384


def symmetric_block(itemsize: int, *, budget_mib: float = DEFAULT_BUDGET_MIB, block: int = SYM_BLOCK) -> int:
    """Side of the square symmetric tile: ``block``, halved while a tile (``side² × itemsize``
    bytes) would take more than a quarter of ``budget_mib``; at least 16.

    >>> symmetric_block(4), symmetric_block(4, budget_mib=1.0)
    (1024, 256)
    """
    quarter = rows_per_block(4, budget_mib)  # validates the budget; its bytes / 4
    side = max(16, block)
    while side > 16 and side * side * itemsize > quarter:
        side //= 2
    return side


SymTask = tuple[int, int, int, int]


def symmetric_tasks(count: int, block: int, *, super_rows: int = SYM_SUPER_ROWS) -> list[SymTask]:
    """Super-tiles ``(r0, r1, c0, c1)`` (rows, columns; half-open, block aligned) covering the
    upper triangle of ``count`` rows once, row-major, ``r0 <= c0``.

    >>> tasks = symmetric_tasks(100, 16, super_rows=32)
    >>> len(tasks), tasks[:2], tasks[-1]
    (10, [(0, 32, 0, 32), (0, 32, 32, 64)], (96, 100, 96, 100))
    """
    # At least ~6 super-rows when there is room, so the tasks (21 of them) balance over the
    # workers; at most ``super_rows`` rows, which bounds the merges per anchor.
    wanted = -(-count // 6)
    side = max(block, min(super_rows - super_rows % block, -(-wanted // block) * block))
    spans = stripes(count, side)
    return [(r0, r1, c0, c1) for k, (r0, r1) in enumerate(spans) for c0, c1 in spans[k:]]


def symmetric_tile_count(task: SymTask, block: int) -> int:
    """GEMM tiles a task multiplies (its progress weight)."""
    r0, r1, c0, c1 = task
    rows = -(-(r1 - r0) // block)
    cols = -(-(c1 - c0) // block)
    return rows * (rows + 1) // 2 if r0 == c0 else rows * cols


def run_symmetric(task: Callable[[Any, SymTask], R], job: Any, tasks: Sequence[SymTask], *, block: int,
                  execution: Execution) -> Iterator[R]:
    """``task(job, super_tile)`` for every super-tile on the execution's engine; yields the
    results in task order, so a caller folding them in that order gets the same figures
    whatever the scheduling."""
    engine = execution.engine
    weights = [symmetric_tile_count(t, block) for t in tasks]
    yield from engine.map(task, engine.share(job), list(tasks), weights=weights, progress=execution.progress)


def symmetric_tiles(
    x: np.ndarray, task: SymTask, block: int, *, centre: np.ndarray | None = None,
) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """``(i0, i1, j0, j1, X_I · X_Jᵀ)`` for the blocks of one super-tile (rows centred by
    ``centre`` when given, as :func:`gram_tiles`); on a diagonal block ``i0 == j0`` only the
    entries ``r < c`` are pairs. Rows are read by slicing ``x`` (a memory map stays one);
    one row block, one column block and one tile are held. A tile is overwritten by the
    next: consume it first."""
    r0, r1, c0, c1 = task
    n_cols = x.shape[1]
    dtype = x.dtype if centre is None else np.result_type(x.dtype, centre.dtype)
    still_whole = mapped_file_guard(x)
    buffer = np.empty(block * block, dtype=dtype)
    left = np.empty((block, n_cols), dtype=dtype)
    right = np.empty((block, n_cols), dtype=dtype)
    for i0 in range(r0, r1, block):
        i1 = min(r1, i0 + block)
        still_whole()
        rows = _load(x, i0, i1, centre, left)
        for j0 in range(max(i0, c0), c1, block):
            j1 = min(c1, j0 + block)
            still_whole()
            cols = _load(x, j0, j1, centre, right)
            tile = buffer[: (i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)  # C-contiguous even at the edges
            np.matmul(rows, cols.T, out=tile)
            yield i0, i1, j0, j1, tile


def _load(x: np.ndarray, first: int, last: int, centre: np.ndarray | None, out: np.ndarray) -> np.ndarray:
    """Rows ``first:last`` of ``x`` (centred) copied into ``out`` (the same copy for either side
    of a tile, so a block's products never depend on where its rows came from)."""
    block = out[: last - first]
    if centre is None:
        block[...] = x[first:last]
    else:
        np.subtract(x[first:last], centre, out=block)
    return block
