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
from embedkit.distances import inverse_norms, squared_norms
from embedkit.engine import Progress, local_threads, ordered_map
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
    progress: Progress | None = None,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> PairScan:
    """Scan every pair ``i < j`` with ``y = [labels[i] == labels[j]]``.

    ``form`` is one of :mod:`embedkit.kernels`' ``FORM_*``; ``margins[0]`` is the main margin.
    """
    x = as_work_array(embeddings)
    n = x.shape[0]
    codes = np.ascontiguousarray(labels, dtype=np.int64)
    terms = inverse_norms(x) if form == FORM_BCE else squared_norms(x)
    margin_array = np.asarray(margins if margins else (1.0,), dtype=np.float64)
    stripes = list(range(0, n, tile_rows))
    weights = [(n - s) * min(tile_rows, n - s) for s in stripes]

    def stripe(first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        last = min(n, first + tile_rows)
        rows = x[first:last]
        sums = np.zeros(len(margin_array), dtype=np.float64)
        actives = np.zeros(len(margin_array), dtype=np.int64)
        counts = np.zeros(3, dtype=np.int64)
        best = (
            np.full(top, -np.inf, dtype=np.float64),
            np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
            np.full(top, np.iinfo(np.int64).max, dtype=np.int64),
            np.zeros(top, dtype=np.float64),
        )
        buffer = np.empty((last - first, tile_cols), dtype=x.dtype)
        for col0 in range(first - first % tile_cols, n, tile_cols):
            col1 = min(n, col0 + tile_cols)
            if col1 <= first + 1:
                continue
            tile = buffer[:, : col1 - col0]
            np.matmul(rows, x[col0:col1].T, out=tile)
            scan_pair_tile(
                tile, terms[first:last], terms[col0:col1], codes[first:last], codes[col0:col1],
                first, col0, form, margin_array, scale, bias, sums, actives, counts, *best,
            )
        return sums, actives, counts, best

    totals = np.zeros(len(margin_array), dtype=np.float64)
    actives = np.zeros(len(margin_array), dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    tops: list[tuple[np.ndarray, ...]] = []
    with local_threads(workers) as pool:
        for sums, act, cnt, best in ordered_map(pool, stripe, stripes, weights=weights, progress=progress):
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
        top=_merge_top(tops, codes, top),
    )


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
