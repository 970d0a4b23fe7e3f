"""Numba kernels of the all-pairs losses: one GEMM tile ``g = X[rows] · X[cols]ᵀ`` in, the
tile's pair-loss totals, counts and top pairs out, without any other tile-sized array.

Contrastive: a pair's loss is non-zero only if it is similar or lies inside a margin, both
usually a small share of the pairs, so the tile is not evaluated pair by pair. The similar
pairs are found through a hash table of the row labels (one probe per column), then their
``D²`` summed one by one in float64. The rest of each row is screened: a branch-free pass
in the tile dtype (vectorised by LLVM: float32 × 8 lanes with AVX2, a handful of
instructions) counts the pairs with ``D²`` below the widest margin (widened for rounding),
over the whole row, then over its blocks of at most :data:`BLOCK` columns; only a block
holding such a pair gets the hinge pass (with the square root), whose block sums are added
to float64 totals. The top list is updated by a float64 scalar pass (0.1's arithmetic),
only for the pairs past its entry thresholds. A tile whose similar pairs may exceed
1/:data:`DENSE_SIMILAR` of its pairs (few classes) is evaluated block by block instead: one
vectorised pass per block for the similar pairs' sums and counts and the pairs inside the
widest margin or past the top list's thresholds, the hinge pass where needed.

Error bound (float32 tiles; float64 tiles run the same code in float64, ``u = 2⁻⁵³``),
against the float64 evaluation of the same tile values (the rounding of the product
itself, ``g``, is the same in both), ``u = 2⁻²⁴``:

- contrastive: ``D² = ‖a‖² + ‖b‖² − 2g`` is off by at most ``δ = 9u·T``,
  ``T = max ‖x − c‖²``; so a similar pair's loss ``γD²`` by ``γδ``, a dissimilar pair's
  ``D`` by ``ΔD ≤ min(√δ, δ/D) + u·D``, its hinge ``h = max(m − D, 0)`` by
  ``Δh ≤ ΔD + 2u·m`` and its loss ``h²`` by ``(2h + Δh)·Δh + 2u·h²`` (``½h²``: half
  that; ``h``: ``Δh``);
- sums: similar pairs' ``D²`` one by one in float64 (``γ·D²``: no further error beyond
  float64's); hinges, and the similar pairs of a dense tile: ``Σ`` of at most
  ``B = BLOCK`` terms in float32, then float64:
  ``|Δ Σ| ≤ (B − 1)·u·Σ ℓ`` on top of the per-pair errors (all terms are ≥ 0); BCE: blocks
  of ``B`` float64 terms.

The float32 product ``g`` itself is off by up to ``d·u·‖a‖‖b‖`` (``d`` = dimension) in every
path, float64 loops included, so these terms add little. ``tests/test_pair_kernel.py``
checks the bound against a float64 loop. BCE evaluates its softplus per pair in float64
(see :func:`bce_tile`): only the blocking is shared.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Pair-loss forms understood by :func:`contrastive_tile` (``squared``, ``halved``,
#: ``linear``) and :func:`bce_tile`.
FORM_SQUARED, FORM_HALVED, FORM_LINEAR, FORM_BCE = 0, 1, 2, 3

#: Columns of one row summed in the tile dtype before the float64 accumulation.
BLOCK = 256

#: A tile whose similar pairs may exceed 1/DENSE_SIMILAR of its pairs (few classes) is
#: evaluated by the dense per-block passes, not pair by pair through the label table.
DENSE_SIMILAR = 32

# Fast-math for the vector passes, without the no-Inf assumption (thresholds may be ±inf).
# No-NaN holds: the rows are checked finite before any scan.
_TILE_MATH = {"nnan", "nsz", "arcp", "contract", "afn", "reassoc"}


def form_coefficients(form: int) -> tuple[float, float, float]:
    """``(γ, α, β)``: a similar pair's loss is ``γ·D²``, a dissimilar pair's ``h·(α·h + β)``
    with ``h = max(m − D, 0)`` (``squared``: ``D²``, ``h²``; ``halved``: ``½D²``, ``½h²``;
    ``linear``: ``½D²``, ``h``).

    >>> form_coefficients(FORM_LINEAR)
    (0.5, 0.0, 1.0)
    """
    return {FORM_SQUARED: (1.0, 1.0, 0.0), FORM_HALVED: (0.5, 0.5, 0.0), FORM_LINEAR: (0.5, 0.0, 1.0)}[form]


def unit_roundoff(dtype: np.dtype) -> float:
    """``u``: 2⁻²⁴ for float32, 2⁻⁵³ for float64."""
    return float(np.finfo(dtype).eps) / 2.0


def distance_slack(terms: np.ndarray) -> float:
    """``δ = 9u·max‖x − c‖²``: how far the tile-dtype ``D²`` may be from the float64 one."""
    return 9.0 * unit_roundoff(terms.dtype) * float(terms.max(initial=0.0))


def logit_slack(scale: float, bias: float) -> float:
    """``8u·(2|s| + |b|)`` (float64 ``u``): how far two float64 evaluations of one BCE logit
    ``s·cos + b`` (in another order) may be apart."""
    return 8.0 * unit_roundoff(np.dtype(np.float64)) * (2.0 * abs(scale) + abs(bias))


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


@njit(nogil=True, cache=True, inline="always")
def _offer(loss, i, j, value, top_loss, top_i, top_j, top_d, worst):  # type: ignore[no-untyped-def]
    """Put item ``(loss, i, j)`` in the top list if it ranks before the last kept; the new last."""
    if loss > 0.0 and loss >= top_loss[worst] and _ranks_before(
            loss, i, j, top_loss[worst], top_i[worst], top_j[worst]):
        top_loss[worst] = loss
        top_i[worst] = i
        top_j[worst] = j
        top_d[worst] = value
        return _last_ranked(top_loss, top_i, top_j)
    return worst


@njit(nogil=True, cache=True)
def softplus(z: float) -> float:
    """``log(1 + eᶻ)`` without overflow."""
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@njit(nogil=True, cache=True, inline="always")
def _hinge64(m: float, alpha: float, beta: float, d2: float) -> float:
    if d2 < m * m:
        h = m - math.sqrt(d2)
        return h * (alpha * h + beta)
    return 0.0


@njit(nogil=True, cache=True)
def _entry_thresholds(worst_loss, m0, gamma, alpha, beta, slack, keep_top, out):  # type: ignore[no-untyped-def]
    """``out[0]``/``out[1]`` (tile dtype): a block can hold a pair entering the top list only
    if a similar pair has ``D² ≥ out[0]`` or a dissimilar one ``D² ≤ out[1]`` (tile values,
    widened by ``slack`` and a relative 10⁻⁶ for the rounding to the tile dtype)."""
    if not keep_top:
        out[0] = np.inf
        out[1] = -np.inf
        return
    if not worst_loss > 0.0:  # the list has room: any loss > 0 enters
        out[0] = 0.0
        out[1] = (m0 * m0 + slack) * (1.0 + 1e-6)
        return
    out[0] = (worst_loss / gamma - slack) * (1.0 - 1e-6)
    # The hinge h with h·(α·h + β) = worst loss; dissimilar pairs reach it at D <= m − h.
    h = (math.sqrt(beta * beta + 4.0 * alpha * worst_loss) - beta) / (2.0 * alpha) if alpha > 0.0 else worst_loss / beta
    out[1] = ((m0 - h) * (m0 - h) + slack) * (1.0 + 1e-6) if h <= m0 else -1.0


@njit(nogil=True, cache=True)
def _contrastive_top(row, terms, codes, a, label, i, j0, m0, gamma, alpha, beta,  # type: ignore[no-untyped-def]
                     top_loss, top_i, top_j, top_d, worst):
    """Offer one block's pairs (similar and dissimilar) to the top list, in float64 as 0.1
    did (``np.float64``: numba's ``float()`` of a float32 stays float32). Returns the new last."""
    a64 = np.float64(a)
    for c in range(row.shape[0]):
        d2 = max(a64 + np.float64(terms[c]) - 2.0 * np.float64(row[c]), 0.0)
        loss = gamma * d2 if codes[c] == label else _hinge64(m0, alpha, beta, d2)
        worst = _offer(loss, i, j0 + c, math.sqrt(d2), top_loss, top_i, top_j, top_d, worst)
    return worst


@njit(nogil=True, fastmath=_TILE_MATH, cache=True)
def _similar_pass(row, terms, codes, a, label, coef, limits):  # type: ignore[no-untyped-def]
    """One block of a tile with many similar pairs, branch-free (vectorised): the similar pairs' ``Σ D²``, count and count with
    ``D² > 0``; the dissimilar pairs inside the widest margin (``D² < limits[2]``); the pairs
    past the top list's entry thresholds ``limits[0:2]``. Counts are summed in the tile dtype
    (exact: a block has at most 256 pairs). The loop runs from 0 over slices, so LLVM sees
    non-negative indices; no min/max reductions (numba's compares carry no fast-math flags,
    and LLVM would not vectorise them)."""
    two = coef[3]
    zero = coef[4]
    one = coef[5]
    sim_enter = limits[0]
    dis_enter = limits[1]
    reach = limits[2]
    sim_sum = zero
    sim_n = zero
    sim_pos = zero
    inside = zero
    enter = zero
    for c in range(row.shape[0]):
        d2 = a + terms[c] - two * row[c]
        d2 = d2 if d2 > zero else zero
        same = codes[c] == label
        sim_sum += d2 if same else zero
        sim_n += one if same else zero
        sim_pos += one if same & (d2 > zero) else zero
        inside += zero if same | (d2 >= reach) else one
        enter += one if (same & (d2 >= sim_enter)) | (~same & (d2 <= dis_enter)) else zero
    return np.float64(sim_sum), int(sim_n), int(sim_pos), int(inside), int(enter)


@njit(nogil=True, cache=True)
def _dissimilar_top(row, terms, codes, a, label, i, j0, m0, alpha, beta,  # type: ignore[no-untyped-def]
                    top_loss, top_i, top_j, top_d, worst):
    """Offer one block's dissimilar pairs to the top list, in float64 as 0.1 did (``np.float64``:
    numba's ``float()`` of a float32 stays float32). Returns the new last."""
    a64 = np.float64(a)
    for c in range(row.shape[0]):
        if codes[c] != label:
            d2 = max(a64 + np.float64(terms[c]) - 2.0 * np.float64(row[c]), 0.0)
            worst = _offer(_hinge64(m0, alpha, beta, d2), i, j0 + c, math.sqrt(d2), top_loss, top_i, top_j,
                           top_d, worst)
    return worst


@njit(nogil=True, cache=True)
def _similar_pairs(g, row_terms, col_terms, row_codes, col_codes, row0, col0, coef, limits,  # type: ignore[no-untyped-def]
                   m0, gamma, alpha, beta, slack, keep_top, top_loss, top_i, top_j, top_d, worst):
    """The tile's similar pairs ``i < j``, found through a hash table of the row labels (one
    probe per column, no pass over the tile): ``(Σ D², count, count with D² > 0, new last)``.
    ``D² = max(a + b − 2g, 0)`` in the tile dtype, summed in float64; pairs with
    ``D² ≥ limits[0]`` are offered to the top list (float64, as :func:`_dissimilar_top`).
    Count ``-1`` (nothing done): the tile may hold more than 1/:data:`DENSE_SIMILAR` similar
    pairs, for :func:`_dense_rows`."""
    n_rows, n_cols = g.shape
    two = coef[3]
    zero = coef[4]
    first = max(row0 + 1 - col0, 0)
    bits = 1
    while (1 << bits) < 2 * n_rows:
        bits += 1
    mask = (1 << bits) - 1
    keys = np.full(mask + 1, -1, dtype=np.int64)
    head = np.empty(mask + 1, dtype=np.int64)
    size = np.zeros(mask + 1, dtype=np.int64)
    chain = np.empty(n_rows, dtype=np.int64)
    # Rows inserted last to first: each label's chain lists its rows in ascending order.
    for r in range(n_rows - 1, -1, -1):
        code = np.int64(row_codes[r])
        slot = (((code * 2654435761) & 0xFFFFFFFF) >> (32 - bits)) if bits < 32 else code & mask
        while keys[slot] != -1 and keys[slot] != code:
            slot = (slot + 1) & mask
        chain[r] = head[slot] if keys[slot] == code else -1
        keys[slot] = code
        head[slot] = r
        size[slot] += 1
    # At most this many similar pairs (the tile's pairs left of the diagonal included): past
    # 1/32 of the tile, one vectorised pass per block costs less than a scalar step per pair.
    bound = 0
    for c in range(first, n_cols):
        code = np.int64(col_codes[c])
        slot = (((code * 2654435761) & 0xFFFFFFFF) >> (32 - bits)) if bits < 32 else code & mask
        while keys[slot] != -1 and keys[slot] != code:
            slot = (slot + 1) & mask
        bound += size[slot] if keys[slot] == code else 0
    if bound * DENSE_SIMILAR > n_rows * (n_cols - first):
        return 0.0, -1, 0, worst
    total = 0.0
    similar = 0
    positive = 0
    for c in range(first, n_cols):
        code = np.int64(col_codes[c])
        slot = (((code * 2654435761) & 0xFFFFFFFF) >> (32 - bits)) if bits < 32 else code & mask
        while keys[slot] != -1 and keys[slot] != code:
            slot = (slot + 1) & mask
        if keys[slot] != code:
            continue
        j = col0 + c
        r = head[slot]
        while r >= 0 and row0 + r < j:
            d2 = row_terms[r] + col_terms[c] - two * g[r, c]
            d2 = d2 if d2 > zero else zero
            total += np.float64(d2)
            similar += 1
            positive += 1 if d2 > zero else 0
            if keep_top and d2 >= limits[0]:
                d64 = max(np.float64(row_terms[r]) + np.float64(col_terms[c]) - 2.0 * np.float64(g[r, c]), 0.0)
                worst = _offer(gamma * d64, row0 + r, j, math.sqrt(d64), top_loss, top_i, top_j, top_d, worst)
                _entry_thresholds(top_loss[worst], m0, gamma, alpha, beta, slack, keep_top, limits)
            r = chain[r]
    return total, similar, positive, worst


@njit(nogil=True, fastmath=_TILE_MATH, cache=True)
def _near_count(row, terms, a, coef, screen):  # type: ignore[no-untyped-def]
    """How many pairs of a row slice have ``a + b − 2g <= screen`` (tile dtype; branch-free,
    vectorised; the count is exact in the tile dtype up to 2²⁴ columns). The loop runs from
    0 over slices, so LLVM sees non-negative indices; no min/max reduction (numba's compares
    carry no fast-math flags, and LLVM would not vectorise them)."""
    two = coef[3]
    zero = coef[4]
    one = coef[5]
    near = zero
    for c in range(row.shape[0]):
        d2 = a + terms[c] - two * row[c]
        near += one if d2 <= screen else zero
    return near > zero


@njit(nogil=True, fastmath=_TILE_MATH, cache=True)
def _hinge_pass(row, terms, codes, a, label, coef, margin, enter):  # type: ignore[no-untyped-def]
    """One block, branch-free (vectorised): the dissimilar pairs' ``Σ h·(α·h + β)``,
    ``h = max(m − D, 0)``, how many are > 0, and how many have ``D² <= enter`` (the top
    list's entry threshold)."""
    alpha = coef[1]
    beta = coef[2]
    two = coef[3]
    zero = coef[4]
    one = coef[5]
    total = zero
    active = zero
    entering = zero
    for c in range(row.shape[0]):
        d2 = a + terms[c] - two * row[c]
        d2 = d2 if d2 > zero else zero
        h = margin - math.sqrt(d2)
        h = h if h > zero else zero
        loss = h * (alpha * h + beta)
        same = codes[c] == label
        loss = zero if same else loss
        total += loss
        active += one if loss > zero else zero
        entering += zero if same | (d2 > enter) else one
    return np.float64(total), int(active), int(entering)


@njit(nogil=True, cache=True)
def _dense_rows(g, row_terms, col_terms, row_codes, col_codes, row0, col0, margins, tile_margins,  # type: ignore[no-untyped-def]
                coef, slack, limits, sums, actives, counts, top_loss, top_i, top_j, top_d, worst):
    """A tile with many similar pairs, block by block: one vectorised pass for the similar
    pairs' sums and counts and the pairs inside the widest margin or past the top list's
    thresholds, then the hinge pass and the float64 top pass where needed. Returns the new last."""
    n_rows, n_cols = g.shape
    n_margins = margins.shape[0]
    keep_top = top_loss.shape[0] > 0
    gamma = np.float64(coef[0])
    alpha = np.float64(coef[1])
    beta = np.float64(coef[2])
    m0 = margins[0]
    for r in range(n_rows):
        i = row0 + r
        start = i - col0 + 1 if i >= col0 else 0
        if start >= n_cols:
            continue
        a = row_terms[r]
        label = row_codes[r]
        counts[0] += n_cols - start
        for b0 in range(start, n_cols, BLOCK):
            b1 = min(b0 + BLOCK, n_cols)
            row = g[r, b0:b1]
            terms = col_terms[b0:b1]
            codes = col_codes[b0:b1]
            sim_sum, sim_n, sim_pos, inside, enter = _similar_pass(row, terms, codes, a, label, coef, limits)
            counts[1] += sim_n
            counts[2] += sim_pos
            for k in range(n_margins):
                total = gamma * sim_sum
                active = sim_pos
                if inside > 0:  # a dissimilar pair lies inside the widest margin
                    hinge_sum, hinge_n, _ = _hinge_pass(row, terms, codes, a, label, coef, tile_margins[k], limits[1])
                    total += hinge_sum
                    active += hinge_n
                sums[k] += total
                actives[k] += active
            if keep_top and enter > 0:
                worst = _contrastive_top(row, terms, codes, a, label, i, col0 + b0, m0, gamma, alpha, beta,
                                         top_loss, top_i, top_j, top_d, worst)
                _entry_thresholds(top_loss[worst], m0, gamma, alpha, beta, slack, keep_top, limits)
    return worst


@njit(nogil=True, cache=True)
def contrastive_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_codes, col_codes, row0, col0, margins, tile_margins, coef, slack,
    sums, actives, counts, top_loss, top_i, top_j, top_d,
):
    """Accumulate the contrastive losses of the tile's pairs ``(row0 + r, col0 + c)``, ``i < j``.

    ``g`` holds ``(a − c)·(b − c)`` and ``*_terms`` ``‖x − c‖²`` (tile dtype), so
    ``D² = max(‖a‖² + ‖b‖² − 2g, 0)``; ``*_codes`` are int32 label codes (similar: equal).
    ``margins`` (float64) / ``tile_margins`` (tile dtype): ``m_k``, ``margins[0]`` the main one;
    ``coef`` (tile dtype): ``[γ, α, β, 2, 0, 1]`` (``γ, α, β`` of :func:`form_coefficients`);
    ``slack = 2δ``. Adds to ``sums[k]``/``actives[k]`` the loss total and the items with
    loss > 0 at ``m_k``, to ``counts`` [pairs, similar pairs, similar pairs with loss > 0];
    keeps the top list (``top_*``, main margin, float64 losses, ``top_d = D``) in
    :func:`_ranks_before` order.

    Similar pairs are found through the row labels (:func:`_similar_pairs`); the rest of a
    row is screened block by block (:func:`_near_count`) and only a block holding a pair
    within the widest margin (widened for rounding) is evaluated (:func:`_hinge_pass`). A
    tile with many similar pairs (few classes) runs :func:`_dense_rows` instead.
    """
    n_rows, n_cols = g.shape
    n_margins = margins.shape[0]
    keep_top = top_loss.shape[0] > 0
    worst = _last_ranked(top_loss, top_i, top_j) if keep_top else 0
    gamma = np.float64(coef[0])
    alpha = np.float64(coef[1])
    beta = np.float64(coef[2])
    m0 = margins[0]
    # Tile-dtype thresholds: [similar entry, dissimilar entry, reach of the widest margin].
    limits = np.empty(3, dtype=g.dtype)
    widest = 0.0
    for k in range(n_margins):
        widest = max(widest, margins[k] * margins[k])
    limits[2] = (widest + slack) * (1.0 + 1e-6)
    _entry_thresholds(top_loss[worst] if keep_top else 0.0, m0, gamma, alpha, beta, slack, keep_top, limits)
    sim_sum, sim_n, sim_pos, worst = _similar_pairs(g, row_terms, col_terms, row_codes, col_codes, row0, col0, coef,
                                                    limits, m0, gamma, alpha, beta, slack, keep_top, top_loss,
                                                    top_i, top_j, top_d, worst)
    if sim_n < 0:  # few classes: many similar pairs
        _dense_rows(g, row_terms, col_terms, row_codes, col_codes, row0, col0, margins, tile_margins, coef, slack,
                    limits, sums, actives, counts, top_loss, top_i, top_j, top_d, worst)
        return
    counts[1] += sim_n
    counts[2] += sim_pos
    for k in range(n_margins):
        sums[k] += gamma * sim_sum
        actives[k] += sim_pos
    # The dissimilar entry threshold never exceeds the reach (m0 <= widest margin), and two
    # tile-dtype evaluations of a + b − 2g in another order differ by less than 2·slack: a
    # block with no pair below this screen holds no pair inside a margin nor entering the top.
    screen = limits[2] + 4.0 * slack
    for r in range(n_rows):
        i = row0 + r
        start = i - col0 + 1 if i >= col0 else 0
        if start >= n_cols:
            continue
        a = row_terms[r]
        label = row_codes[r]
        counts[0] += n_cols - start
        if not _near_count(g[r, start:], col_terms[start:], a, coef, screen):
            continue
        for b0 in range(start, n_cols, BLOCK):
            b1 = min(b0 + BLOCK, n_cols)
            row = g[r, b0:b1]
            terms = col_terms[b0:b1]
            if not _near_count(row, terms, a, coef, screen):
                continue
            codes = col_codes[b0:b1]
            entering = 0
            for k in range(n_margins):
                hinge_sum, hinge_n, enter_k = _hinge_pass(row, terms, codes, a, label, coef, tile_margins[k],
                                                          limits[1])
                sums[k] += hinge_sum
                actives[k] += hinge_n
                if k == 0:
                    entering = enter_k
            if keep_top and entering > 0:
                worst = _dissimilar_top(row, terms, codes, a, label, i, col0 + b0, m0, alpha, beta,
                                        top_loss, top_i, top_j, top_d, worst)
                _entry_thresholds(top_loss[worst], m0, gamma, alpha, beta, slack, keep_top, limits)


@njit(nogil=True, fastmath=_TILE_MATH, cache=True)
def bce_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_codes, col_codes, row0, col0, coef, slack,
    sums, actives, counts, top_loss, top_i, top_j, top_d,
):
    """Accumulate the binary cross-entropy of the tile's pairs ``(row0 + r, col0 + c)``, ``i < j``.

    ``g`` holds ``a·b`` and ``*_terms`` ``1/‖x‖`` (float64): ``cos = g·(1/‖a‖)·(1/‖b‖)``,
    ``z = s·cos + b`` (``coef`` = ``[s, b]``), loss ``softplus(−z)`` for a similar pair,
    ``softplus(z)`` otherwise, all in float64 as in 0.1 (``exp``/``log1p`` are libm calls per
    pair: LLVM vectorises them only with Intel's SVML, absent here, so float32 gains
    nothing). ``slack``: how far a block's largest logit may be below one pair's (rounding).
    Every ``sums[k]``/``actives[k]`` gets the same total and count of losses > 0 (margins do
    not apply); ``counts`` and the top list (``top_d = cos``) as :func:`contrastive_tile`.
    """
    n_rows, n_cols = g.shape
    n_margins = sums.shape[0]
    keep_top = top_loss.shape[0] > 0
    worst = _last_ranked(top_loss, top_i, top_j) if keep_top else 0
    scale64 = np.float64(coef[0])
    bias64 = np.float64(coef[1])
    for r in range(n_rows):
        i = row0 + r
        start = i - col0 + 1 if i >= col0 else 0
        if start >= n_cols:
            continue
        a64 = np.float64(row_terms[r])
        label = row_codes[r]
        counts[0] += n_cols - start
        for b0 in range(start, n_cols, BLOCK):
            b1 = min(b0 + BLOCK, n_cols)
            block_sum = 0.0
            block_pos = 0
            sim_n = 0
            sim_pos = 0
            t_max = -np.inf
            for c in range(b0, b1):
                z = scale64 * (np.float64(g[r, c]) * a64 * np.float64(col_terms[c])) + bias64
                same = col_codes[c] == label
                t = -z if same else z
                loss = max(t, 0.0) + math.log1p(math.exp(-abs(t)))
                block_sum += loss
                block_pos += 1 if loss > 0.0 else 0
                sim_n += 1 if same else 0
                sim_pos += 1 if same and loss > 0.0 else 0
                t_max = max(t_max, t)
            counts[1] += sim_n
            counts[2] += sim_pos
            for k in range(n_margins):
                sums[k] += np.float64(block_sum)
                actives[k] += block_pos
            if keep_top and softplus(t_max + slack) >= top_loss[worst]:
                for c in range(b0, b1):
                    value = np.float64(g[r, c]) * a64 * np.float64(col_terms[c])
                    z64 = scale64 * value + bias64
                    loss = softplus(-z64) if col_codes[c] == label else softplus(z64)
                    worst = _offer(loss, i, col0 + c, value, top_loss, top_i, top_j, top_d, worst)
