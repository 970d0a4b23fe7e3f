"""Fused numba kernels: one pass over a GEMM tile instead of several numpy passes.

A tile ``g = X[rows] · X[cols]ᵀ`` comes from BLAS; the kernel turns it into pair losses,
sums them in float64 and keeps the top items, without writing any other tile-sized
array. Kernels release the GIL so worker threads run them side by side.
"""

from __future__ import annotations

import math

from numba import njit

#: Pair-loss forms understood by :func:`scan_pair_tile`.
FORM_SQUARED, FORM_HALVED, FORM_LINEAR, FORM_BCE = 0, 1, 2, 3


@njit(nogil=True, cache=True, inline="always")
def _ranks_before(loss_a: float, i_a: int, j_a: int, loss_b: float, i_b: int, j_b: int) -> bool:
    """Order of the top list: larger loss first, then smaller (i, j)."""
    if loss_a != loss_b:
        return loss_a > loss_b
    if i_a != i_b:
        return i_a < i_b
    return j_a < j_b


@njit(nogil=True, cache=True)
def _last_ranked(top_loss, top_i, top_j):  # type: ignore[no-untyped-def]
    worst = 0
    for k in range(1, top_loss.shape[0]):
        if _ranks_before(top_loss[worst], top_i[worst], top_j[worst], top_loss[k], top_i[k], top_j[k]):
            worst = k
    return worst


@njit(nogil=True, cache=True)
def _softplus(z: float) -> float:
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@njit(nogil=True, fastmath=True, cache=True)
def scan_pair_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_labels, col_labels, row0, col0, form, margins, scale, bias,
    sums, actives, counts, top_loss, top_i, top_j, top_d,
):
    """Accumulate pair losses of one tile, pairs ``(row0 + r, col0 + c)`` with ``i < j`` only.

    Euclidean forms: ``row_terms``/``col_terms`` are ``‖x‖²`` and ``D² = ‖a‖² + ‖b‖² − 2g``
    (clipped at 0). ``FORM_BCE``: they are ``1/‖x‖`` and ``cos = g/(‖a‖‖b‖)``.
    ``sums[k]``/``actives[k]``: total and items with loss > 0 at ``margins[k]``.
    ``counts``: [pairs, similar pairs, active similar pairs]; ``sims``-free for speed.
    The top list (``top_*``, margin 0) is kept in :func:`_ranks_before` order.
    """
    n_rows, n_cols = g.shape
    n_margins = margins.shape[0]
    keep_top = top_loss.shape[0] > 0
    worst = _last_ranked(top_loss, top_i, top_j) if keep_top else 0
    main_margin = margins[0]
    total = 0.0
    active = 0
    pairs = 0
    similar = 0
    similar_active = 0
    for r in range(n_rows):
        i = row0 + r
        start = i - col0 + 1 if i >= col0 else 0
        if start >= n_cols:
            continue
        a_term = row_terms[r]
        a_label = row_labels[r]
        for c in range(start, n_cols):
            same = a_label == col_labels[c]
            pairs += 1
            loss = 0.0
            if form == FORM_BCE:
                value = g[r, c] * a_term * col_terms[c]
                z = scale * value + bias
                loss = _softplus(-z) if same else _softplus(z)
                for k in range(1, n_margins):
                    sums[k] += loss
                    actives[k] += 1
            else:
                d2 = a_term + col_terms[c] - 2.0 * g[r, c]
                if d2 < 0.0:
                    d2 = 0.0
                value = d2
                if same:
                    loss = d2 if form == FORM_SQUARED else 0.5 * d2
                    similar += 1
                    if loss > 0.0:
                        similar_active += 1
                    for k in range(1, n_margins):
                        sums[k] += loss
                        if loss > 0.0:
                            actives[k] += 1
                else:
                    if d2 < main_margin * main_margin:
                        h = main_margin - math.sqrt(d2)
                        loss = h * h if form == FORM_SQUARED else (0.5 * h * h if form == FORM_HALVED else h)
                    for k in range(1, n_margins):
                        m = margins[k]
                        if d2 < m * m:
                            h = m - math.sqrt(d2)
                            sums[k] += h * h if form == FORM_SQUARED else (0.5 * h * h if form == FORM_HALVED else h)
                            actives[k] += 1
            if loss > 0.0:
                total += loss
                active += 1
            if keep_top and loss >= top_loss[worst]:
                j = col0 + c
                if _ranks_before(loss, i, j, top_loss[worst], top_i[worst], top_j[worst]):
                    top_loss[worst] = loss
                    top_i[worst] = i
                    top_j[worst] = j
                    top_d[worst] = value if form == FORM_BCE else math.sqrt(value)
                    worst = _last_ranked(top_loss, top_i, top_j)
    sums[0] += total
    actives[0] += active
    counts[0] += pairs
    counts[1] += similar
    counts[2] += similar_active
