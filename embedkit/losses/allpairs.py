"""All label-derived pairs (i < j) of a pair loss, scanned in tiles without an n×n matrix.

The upper triangle is cut into stripes of ``tile_rows`` anchors on the one tile driver
(:mod:`embedkit.tiles`): each stripe multiplies its rows with the column tiles right of the
diagonal (BLAS GEMM, one thread per worker; columns within ``budget_mib``) and hands each
tile to the fused kernel :func:`embedkit.kernels.scan_pair_tile`. Stripe results are merged
in stripe order, so totals do not depend on scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import as_work_array
from embedkit.chunking import DEFAULT_BUDGET_MIB
from embedkit.distances import centred_squared_norms, column_mean, inverse_norms
from embedkit.engines import Engine, Progress
from embedkit.kernels import FORM_BCE, scan_pair_tile
from embedkit.mapped import work_rows
from embedkit.tiles import TILE_COLS, gram_tiles, run_stripes, stripes, tile_shape

TILE_ROWS = 512


@dataclass(frozen=True)
class PairScan:
    """Totals of a scan: ``totals[k]``/``actives[k]`` at ``margins[k]``, and the top pairs."""

    totals: np.ndarray
    actives: np.ndarray
    count: int
    similar: int
    similar_active: int
    top: dict[str, np.ndarray]


@dataclass(frozen=True)
class _ScanInputs:
    """What every stripe task reads: shared once per worker, never sent per task."""

    x: np.ndarray
    terms: np.ndarray
    centre: np.ndarray | None
    codes: np.ndarray
    form: int
    margins: np.ndarray
    scale: float
    bias: float
    top: int
    tile_rows: int
    tile_cols: int


def scan_label_pairs(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    form: int,
    margins: tuple[float, ...] = (1.0,),
    scale: float = 10.0,
    bias: float = -10.0,
    top: int = 10,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    workers: int | None = None,
    engine: Engine | None = None,
    progress: Progress | None = None,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> PairScan:
    """Scan every pair ``i < j`` with ``y = [labels[i] == labels[j]]``.

    ``form`` is one of :mod:`embedkit.kernels`' ``FORM_*``; ``margins[0]`` is the main margin.
    Stripes run on ``engine`` (default: a :class:`LocalEngine` of ``workers`` threads) and
    are merged in stripe order, so every engine gives the same float64 totals.
    """
    by_path = work_rows(embeddings)  # a mapped file in the work dtype: tasks get it by path, not by value
    x = by_path if isinstance(by_path, np.ndarray) else as_work_array(embeddings)
    n = x.shape[0]
    tile_rows, tile_cols = tile_shape(x.itemsize, n, budget_mib=budget_mib, rows=tile_rows, cols=tile_cols)
    # Euclidean forms work on rows centred on their mean (distances do not change; the
    # float32 expansion ‖a‖² + ‖b‖² − 2ab stays accurate when the rows share an offset).
    # Cosine is not translation-invariant: BCE uses the raw rows.
    centre = None if form == FORM_BCE else column_mean(x)
    inputs = _ScanInputs(
        x=x,
        terms=inverse_norms(x) if centre is None else centred_squared_norms(x, centre).astype(x.dtype),
        centre=None if centre is None else centre.astype(x.dtype),
        codes=np.ascontiguousarray(labels, dtype=np.int64),
        form=form,
        margins=np.asarray(margins if margins else (1.0,), dtype=np.float64),
        scale=scale,
        bias=bias,
        top=top,
        tile_rows=tile_rows,
        tile_cols=tile_cols,
    )
    bounds = stripes(n, tile_rows)
    weights = [(n - first) * (last - first) for first, last in bounds]
    totals = np.zeros(len(inputs.margins), dtype=np.float64)
    actives = np.zeros(len(inputs.margins), dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    tops: list[tuple[np.ndarray, ...]] = []
    for sums, act, cnt, best in run_stripes(scan_stripe, inputs, bounds, weights=weights, engine=engine,
                                            workers=workers, progress=progress):
        totals += sums
        actives += act
        counts += cnt
        tops.append(best)
    return PairScan(
        totals=totals,
        actives=actives,
        count=int(counts[0]),
        similar=int(counts[1]),
        similar_active=int(counts[2]),
        top=_merge_top(tops, inputs.codes, top),
    )


def scan_stripe(inputs: _ScanInputs, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      tuple[np.ndarray, ...]]:
    """Rows ``first .. last`` against every later row: sums, actives, counts, top."""
    x, top = inputs.x, inputs.top
    first, last = bounds
    rows = x[first:last] if inputs.centre is None else np.ascontiguousarray(x[first:last] - inputs.centre)
    sums = np.zeros(len(inputs.margins), dtype=np.float64)
    actives = np.zeros(len(inputs.margins), dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    best = (
        np.full(top, -np.inf, dtype=np.float64),
        np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
        np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
        np.zeros(top, dtype=np.float64),
    )
    for col0, col1, tile in gram_tiles(rows, x, inputs.tile_cols, upper_from=first, centre=inputs.centre):
        scan_pair_tile(
            tile, inputs.terms[first:last], inputs.terms[col0:col1], inputs.codes[first:last],
            inputs.codes[col0:col1], first, col0, inputs.form, inputs.margins, inputs.scale, inputs.bias,
            sums, actives, counts, *best,
        )
    return sums, actives, counts, best


def _merge_top(parts: list[tuple[np.ndarray, ...]], codes: np.ndarray, size: int) -> dict[str, np.ndarray]:
    loss = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
    first = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    second = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.int64)
    value = np.concatenate([p[3] for p in parts]) if parts else np.empty(0)
    filled = np.isfinite(loss) & (loss > 0)  # zero-loss items contribute nothing
    loss, first, second, value = loss[filled], first[filled], second[filled], value[filled]
    order = np.lexsort((second, first, -loss))[:size]
    first, second = first[order], second[order]
    return {
        "i": first,
        "j": second,
        "y": (codes[first] == codes[second]).astype(np.int64),
        "value": value[order],
        "loss": loss[order],
    }
