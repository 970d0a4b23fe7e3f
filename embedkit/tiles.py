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

from embedkit.chunking import DEFAULT_BUDGET_MIB, rows_per_block
from embedkit.engines import Engine, LocalEngine, Progress

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
                cost_per_row: int = 1, weights: list[int] | None = None, engine: Engine | None = None,
                workers: int | None = None, progress: Progress | None = None) -> list[R]:
    """``task(job, stripe)`` for every stripe on ``engine`` (default: ``workers`` local threads),
    results in stripe order. ``job`` is shared with the workers once. Progress weighs a
    stripe by ``weights`` or else by its rows × ``cost_per_row``."""
    if weights is None:
        weights = [(last - first) * max(1, cost_per_row) for first, last in bounds]
    runner = engine if engine is not None else LocalEngine(workers)
    return list(runner.map(task, runner.share(job), list(bounds), weights=weights, progress=progress))


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
    buffer = np.empty((len(rows), tile_cols), dtype=dtype)
    columns = np.empty((tile_cols, x.shape[1]), dtype=dtype) if centre is not None else None
    start = 0 if upper_from is None else upper_from - upper_from % tile_cols
    for col0 in range(start, n, tile_cols):
        col1 = min(n, col0 + tile_cols)
        if upper_from is not None and col1 <= upper_from + 1:
            continue
        tile = buffer[:, : col1 - col0]
        block = x[col0:col1]
        if columns is not None:
            block = np.subtract(block, centre, out=columns[: col1 - col0])
        np.matmul(rows, block.T, out=tile)
        yield col0, col1, tile
