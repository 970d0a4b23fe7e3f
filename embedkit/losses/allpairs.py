"""All label-derived pairs (i < j) of a pair loss, scanned in tiles without an n×n matrix.

The upper triangle is cut into stripes of ``tile_rows`` anchors; each stripe runs on a
worker thread, multiplies its rows with column tiles of ``tile_cols`` rows (BLAS GEMM,
one thread per worker) and hands each tile to the fused kernel
:func:`embedkit.kernels.scan_pair_tile`. Stripe results are merged in stripe order, so
totals do not depend on scheduling. Working memory: one ``tile_rows × tile_cols`` tile
per worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import as_work_array
from embedkit.distances import centred_squared_norms, column_mean, gram_tiles, inverse_norms
from embedkit.engines import Engine, LocalEngine, Progress
from embedkit.kernels import FORM_BCE, scan_pair_tile

TILE_ROWS = 512
TILE_COLS = 2048


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
    x = as_work_array(embeddings)
    n = x.shape[0]
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
    stripes = list(range(0, n, tile_rows))
    weights = [(n - s) * min(tile_rows, n - s) for s in stripes]
    totals = np.zeros(len(inputs.margins), dtype=np.float64)
    actives = np.zeros(len(inputs.margins), dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    tops: list[tuple[np.ndarray, ...]] = []
    runner = engine if engine is not None else LocalEngine(workers)
    shared = runner.share(inputs)
    for sums, act, cnt, best in runner.map(scan_stripe, shared, stripes, weights=weights, progress=progress):
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


def scan_stripe(inputs: _ScanInputs, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Rows ``first .. first + tile_rows`` against every later row: sums, actives, counts, top."""
    x, n, top = inputs.x, inputs.x.shape[0], inputs.top
    last = min(n, first + inputs.tile_rows)
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
