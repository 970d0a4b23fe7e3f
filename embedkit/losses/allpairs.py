"""All label-derived pairs (i < j) of a pair loss, scanned in tiles without an n×n matrix.

The upper triangle is cut into stripes of ``tile_rows`` anchors on the one tile driver
(:mod:`embedkit.tiles`): each stripe multiplies its rows with the column tiles from its own
first row on (BLAS GEMM, one thread per worker; columns within ``budget_mib``) and hands
each tile to a kernel of :mod:`embedkit.losses.pair_kernel` (blocked tile-dtype sums, error
bound stated there). Stripe results are merged in stripe order, so figures do not depend on
scheduling, worker count or engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import as_work_array
from embedkit.distances import centred_squared_norms, column_mean, inverse_norms
from embedkit.execution import Execution
from embedkit.losses.pair_kernel import (
    FORM_BCE,
    bce_tile,
    contrastive_tile,
    distance_slack,
    form_coefficients,
    logit_slack,
)
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
    tile_margins: np.ndarray
    coef: np.ndarray
    slack: float
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
    execution: Execution = Execution(),
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> PairScan:
    """Scan every pair ``i < j`` with ``y = [labels[i] == labels[j]]``.

    ``form`` is one of :mod:`embedkit.losses.pair_kernel`'s ``FORM_*``; ``margins[0]`` is the
    main margin. Stripes run on the execution's engine, tiles within its budget, and are
    merged in stripe order, so every engine and worker count gives the same
    float64 totals, bit for bit on one CPU model (a different tile shape sums in another order: same figures
    within the bound of :mod:`embedkit.losses.pair_kernel`).
    """
    by_path = work_rows(embeddings)  # a mapped file in the work dtype: tasks get it by path, not by value
    x = by_path if isinstance(by_path, np.ndarray) else as_work_array(embeddings)
    n = x.shape[0]
    tile_rows, tile_cols = tile_shape(x.itemsize, n, budget_mib=execution.budget_mib, rows=tile_rows, cols=tile_cols)
    # Euclidean forms work on rows centred on their mean (distances do not change; the
    # float32 expansion ‖a‖² + ‖b‖² − 2ab stays accurate when the rows share an offset).
    # Cosine is not translation-invariant: BCE uses the raw rows.
    centre = None if form == FORM_BCE else column_mean(x)
    # BCE evaluates in float64 from float64 inverse norms; contrastive in the tile dtype.
    terms = inverse_norms(x) if centre is None else centred_squared_norms(x, centre).astype(x.dtype)
    margin_values = np.asarray(margins if margins else (1.0,), dtype=np.float64)
    if form == FORM_BCE:
        coef = np.array([scale, bias], dtype=np.float64)
        slack = logit_slack(scale, bias)
    else:
        coef = np.array([*form_coefficients(form), 2.0, 0.0, 1.0], dtype=x.dtype)
        slack = 2.0 * distance_slack(terms)
    # Dense int32 codes (equality is kept): BCE compares 8 per AVX2 instruction, the contrastive
    # kernel hashes the row codes of a tile.
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    tile_centre = None if centre is None else centre.astype(x.dtype)
    if tile_centre is not None and x.nbytes <= execution.budget_mib * 2**20:
        # Centred once, when the copy fits in the budget: otherwise every stripe centres
        # every later column tile again (~5% of the tile products at 512 rows). The same
        # tile-dtype subtraction, so the same tiles, bit for bit.
        x, tile_centre = np.subtract(np.asarray(x), tile_centre, dtype=x.dtype), None
    inputs = _ScanInputs(
        x=x,
        terms=terms,
        centre=tile_centre,
        codes=codes.reshape(-1).astype(np.int32),
        form=form,
        margins=margin_values,
        tile_margins=margin_values.astype(x.dtype),
        coef=coef,
        slack=slack,
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
    for sums, act, cnt, best in run_stripes(scan_stripe, inputs, bounds, weights=weights,
                                            execution=execution):
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
    # A copy even uncentred: numpy multiplies a block by itself with SYRK, not GEMM, when
    # both are views of one buffer, and the two round differently; a copy keeps every tile
    # on GEMM whatever the stripe and process.
    rows = np.array(x[first:last]) if inputs.centre is None else np.ascontiguousarray(x[first:last] - inputs.centre)
    sums = np.zeros(len(inputs.margins), dtype=np.float64)
    actives = np.zeros(len(inputs.margins), dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    best = (
        np.full(top, -np.inf, dtype=np.float64),
        np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
        np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
        np.zeros(top, dtype=np.float64),
    )
    row_terms, row_codes = inputs.terms[first:last], inputs.codes[first:last]
    # Column tiles start at the stripe's first row: no tile left of the diagonal block.
    for col0, col1, tile in gram_tiles(rows, x[first:], inputs.tile_cols, upper_from=0, centre=inputs.centre):
        col0, col1 = col0 + first, col1 + first
        col_terms, col_codes = inputs.terms[col0:col1], inputs.codes[col0:col1]
        if inputs.form == FORM_BCE:
            bce_tile(tile, row_terms, col_terms, row_codes, col_codes, first, col0, inputs.coef, inputs.slack,
                     sums, actives, counts, *best)
        else:
            contrastive_tile(tile, row_terms, col_terms, row_codes, col_codes, first, col0, inputs.margins,
                             inputs.tile_margins, inputs.coef, inputs.slack, sums, actives, counts, *best)
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
