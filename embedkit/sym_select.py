"""Numba kernels of the symmetric self-join's top-k for large k (eval's label k-NN, k = the
largest class; mining with more than ``DENSE_K`` negatives): a filtered tile feeding
buffered per-anchor selections, and the final (key, row) sort of every row. The heap form
for small k and the band kernels are in :mod:`embedkit.sym_kernels`."""

from __future__ import annotations

import numpy as np
from numba import njit

# With k in the hundreds (eval's label k-NN: k = the largest class), a tile row holds a
# candidate for its row or for a column every hundred pairs or so. Two costs then dominate
# :func:`embedkit.sym_kernels.sym_topk_tile`: its per-segment flags are nearly all set, so the exact pass (float64
# key, two compares, branches) runs over every pair; and each accepted candidate sifts
# through a heap of k (log₂ k levels of unpredictable branches). Here:
#
# 1. *Filter.* One branch-free pass per tile row in the tile's dtype marks the pairs whose
#    key may be within the row's or the column's threshold (taken at the tile's start;
#    thresholds only tighten), with an allowance for its rounding; only marked pairs get
#    the exact float64 key. Error bound: with s = 2g (exact), ub = fl(b), w = fl(s − ub)
#    (unit roundoff u <= 2⁻²⁴) and |g| <= ‖x̃_a‖‖x̃_b‖(1 + 10⁻⁵) <= 1.0001·M, M the largest
#    term of the tile's rows and columns: |w − (s − b)| <= u·M + u·3.0002·M < 2⁻²¹·M, and
#    the float64 key's own rounding is ~2⁻⁵⁰·M. So key <= hi implies w >= a − hi − 2⁻²⁰·M,
#    the limit used (lowered again so its rounding into the tile dtype cannot raise it);
#    the columns' test exchanges a and b. Terms of 10³⁰ or more (or not finite) mark
#    every pair (the exact test then decides alone).
# 2. *Buffered selection.* Each anchor keeps up to ``cap`` (> k) entries and a threshold
#    (key, row): a candidate ranking before the threshold is appended (one store); when
#    the buffer is full, a quickselect keeps the k smallest in (key, row) order and the
#    k-th becomes the threshold. A candidate ranking after the threshold has k entries
#    before it, so it is not among the k nearest: the kept set is exact, and (key, row) is
#    a total order (rows are distinct within an anchor), so the k smallest do not depend
#    on the order candidates arrive in.

#: Filter allowance, relative to the largest term of the tile (see the bound above).
FILTER_SLACK = 2.0 ** -20
#: Terms at or above this mark every pair (their rounding into float32 could overflow).
FILTER_MAX_TERM = 1e30

_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)


def _debruijn_table() -> np.ndarray:
    table = np.zeros(64, dtype=np.int64)
    for i in range(64):
        table[((1 << i) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = i
    return table


#: Bit index of a 64-bit word's lowest set bit, by de Bruijn multiplication.
_LOWEST_BIT = _debruijn_table()


@njit(nogil=True, cache=True, inline="always")
def _before(key_a, id_a, key_b, id_b):  # type: ignore[no-untyped-def]
    """(key, row) order: a comes before b."""
    return key_a < key_b or (key_a == key_b and id_a < id_b)


@njit(nogil=True, cache=True, inline="always")
def _partition(keys, ids, lo, hi):  # type: ignore[no-untyped-def]
    """Hoare partition of ``[lo, hi]`` around the median of its first, middle and last
    entries, in (key, row) order: returns ``(i, j)`` with every entry up to ``j`` not after
    the pivot, every entry from ``i`` not before it (``j < i``)."""
    mid = (lo + hi) >> 1
    if _before(keys[mid], ids[mid], keys[lo], ids[lo]):
        keys[lo], keys[mid] = keys[mid], keys[lo]
        ids[lo], ids[mid] = ids[mid], ids[lo]
    if _before(keys[hi], ids[hi], keys[lo], ids[lo]):
        keys[lo], keys[hi] = keys[hi], keys[lo]
        ids[lo], ids[hi] = ids[hi], ids[lo]
    if _before(keys[hi], ids[hi], keys[mid], ids[mid]):
        keys[mid], keys[hi] = keys[hi], keys[mid]
        ids[mid], ids[hi] = ids[hi], ids[mid]
    pk = keys[mid]
    pi = ids[mid]
    i = lo
    j = hi
    while i <= j:
        while _before(keys[i], ids[i], pk, pi):
            i += 1
        while _before(pk, pi, keys[j], ids[j]):
            j -= 1
        if i <= j:
            keys[i], keys[j] = keys[j], keys[i]
            ids[i], ids[j] = ids[j], ids[i]
            i += 1
            j -= 1
    return i, j


@njit(nogil=True, cache=True)
def select_smallest(keys, ids, m, t):  # type: ignore[no-untyped-def]
    """Reorder ``keys[:m]``/``ids[:m]`` (pairs, distinct in (key, row) order) so that the
    ``t`` smallest come first and the t-th smallest sits at ``t − 1`` (quickselect, Hoare
    partition around a median of three; deterministic)."""
    lo = 0
    hi = m - 1
    target = t - 1
    while lo < hi:
        i, j = _partition(keys, ids, lo, hi)
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break


@njit(nogil=True, cache=True)
def _mark_row(g_row, col_t, col_lim, row_t, row_lim, mask):  # type: ignore[no-untyped-def]
    """``mask[c]`` = pair (row, c) may be within the row's or column c's threshold:
    ``2g − fl(b) >= row_lim`` or ``2g − fl(a) >= col_lim[c]``, in the tile dtype. A
    branch-free loop of its own over the whole row, so it vectorises (starting it at a
    variable column, as a diagonal tile would, made LLVM give up: 5× slower)."""
    for c in range(g_row.shape[0]):
        s = g_row[c] + g_row[c]
        mask[c] = ((s - col_t[c]) >= row_lim) | ((s - row_t) >= col_lim[c])


@njit(nogil=True, cache=True, inline="always")
def _limit(term, hi, slack):  # type: ignore[no-untyped-def]
    """``term − hi − slack``, lowered by a relative 2⁻²³ so that its rounding into float32
    cannot raise it (``-inf`` for an unbounded anchor, ``inf`` for one that is off)."""
    t = term - hi - slack
    if not abs(t) < np.inf:
        return t
    return t - abs(t) * 2.0 ** -23


@njit(nogil=True, cache=True)
def sym_select_tile(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, row0, col0,
    row_keys, row_ids, row_count, row_thr, row_thr_id, col_keys, col_ids, col_count, col_thr, col_thr_id, k,
):
    """Feed a tile to the buffered selections of its rows (offered ``(v, col0 + c)``) and of
    its columns (offered ``(v, row0 + r)``), ``v`` the clipped key as in
    :func:`sym_topk_tile`, pairs with equal labels skipped. Anchor a's state: entries
    ``*_keys[a, :*_count[a]]`` (capacity ``*_keys.shape[1]`` > k) and threshold
    ``(*_thr[a], *_thr_id[a])``: only entries before it in (key, row) order are kept
    (start it at ``(bound, int64 max)``, or ``-inf`` for an anchor that is off). The
    states may alias (diagonal tile)."""
    n_rows, n_cols = g.shape
    cap = row_keys.shape[1]
    top = 0.0
    for r in range(n_rows):
        top = max(top, row_terms[r])
    for c in range(n_cols):
        top = max(top, col_terms[c])
    filtered = top < FILTER_MAX_TERM
    slack = FILTER_SLACK * top
    row_t = np.zeros(n_rows, dtype=g.dtype)
    row_lim = np.full(n_rows, -np.inf, dtype=g.dtype)
    col_t = np.zeros(n_cols, dtype=g.dtype)
    col_lim = np.full(n_cols, -np.inf, dtype=g.dtype)
    if filtered:
        for r in range(n_rows):
            row_t[r] = row_terms[r]
            row_lim[r] = _limit(row_terms[r], row_thr[r], slack)
        for c in range(n_cols):
            col_t[c] = col_terms[c]
            col_lim[c] = _limit(col_terms[c], col_thr[c], slack)
    words = (n_cols + 7) // 8
    mask = np.zeros(words * 8, dtype=np.uint8)
    marked = mask.view(np.uint64)
    for r in range(n_rows):
        first = r + 1 if diagonal else 0
        if first >= n_cols:
            continue
        _mark_row(g[r], col_t, col_lim, row_t[r], row_lim[r], mask)
        a_term = row_terms[r]
        a_label = row_labels[r]
        keys = row_keys[r]
        ids = row_ids[r]
        count = row_count[r]
        thr = row_thr[r]
        thr_id = row_thr_id[r]
        a_id = row0 + r
        for word in range(first // 8, words):
            bits = marked[word]
            if bits == 0:
                continue
            if word == first // 8 and first % 8:
                bits &= ~((np.uint64(1) << np.uint64(8 * (first % 8))) - np.uint64(1))
            while bits != 0:
                low = bits & (~bits + np.uint64(1))
                bits ^= low
                c = 8 * word + (_LOWEST_BIT[(low * _DEBRUIJN) >> np.uint64(58)] >> 3)
                if col_labels[c] == a_label:
                    continue
                v = a_term + col_terms[c] - 2.0 * g[r, c]
                w = v if v > 0.0 else 0.0
                if not w < np.inf:
                    continue
                b_id = col0 + c
                if w < thr or (w == thr and b_id < thr_id):
                    keys[count] = w
                    ids[count] = b_id
                    count += 1
                    if count == cap:
                        select_smallest(keys, ids, cap, k)
                        count = k
                        thr = keys[k - 1]
                        thr_id = ids[k - 1]
                if w < col_thr[c] or (w == col_thr[c] and a_id < col_thr_id[c]):
                    m = col_count[c]
                    col_keys[c, m] = w
                    col_ids[c, m] = a_id
                    m += 1
                    if m == cap:
                        select_smallest(col_keys[c], col_ids[c], cap, k)
                        m = k
                        col_thr[c] = col_keys[c, k - 1]
                        col_thr_id[c] = col_ids[c, k - 1]
                    col_count[c] = m
        row_count[r] = count
        row_thr[r] = thr
        row_thr_id[r] = thr_id


@njit(nogil=True, cache=True)
def _sort_pairs(keys, ids):  # type: ignore[no-untyped-def]
    """Sort ``keys``/``ids`` in place in (key, row) order: quicksort (median of three) down to
    runs of 16, then one insertion pass."""
    m = keys.shape[0]
    stack = np.empty(128, dtype=np.int64)  # the smaller side is pushed: depth <= log2(m)
    stack[0] = 0
    stack[1] = m - 1
    top = 2
    while top > 0:
        hi = stack[top - 1]
        lo = stack[top - 2]
        top -= 2
        while hi - lo > 16:
            i, j = _partition(keys, ids, lo, hi)
            if j - lo < hi - i:
                if i < hi:
                    stack[top] = i
                    stack[top + 1] = hi
                    top += 2
                hi = j
            else:
                if lo < j:
                    stack[top] = lo
                    stack[top + 1] = j
                    top += 2
                lo = i
    for a in range(1, m):
        key = keys[a]
        ident = ids[a]
        b = a - 1
        while b >= 0 and _before(key, ident, keys[b], ids[b]):
            keys[b + 1] = keys[b]
            ids[b + 1] = ids[b]
            b -= 1
        keys[b + 1] = key
        ids[b + 1] = ident


@njit(nogil=True, cache=True)
def sort_rows(keys, ids):  # type: ignore[no-untyped-def]
    """Sort every row of ``keys``/``ids`` in place in (key, row) order, the order of
    ``np.lexsort((ids, keys), axis=1)`` (~1.6x faster than it at 136 columns)."""
    for a in range(keys.shape[0]):
        _sort_pairs(keys[a], ids[a])


@njit(nogil=True, cache=True)
def settle_selections(keys, ids, count, k):  # type: ignore[no-untyped-def]
    """Cut every state holding more than ``k`` entries down to its ``k`` smallest."""
    for a in range(keys.shape[0]):
        if count[a] > k:
            select_smallest(keys[a], ids[a], count[a], k)
            count[a] = k


@njit(nogil=True, cache=True)
def merge_selections(keys, ids, part_keys, part_ids, part_count):  # type: ignore[no-untyped-def]
    """``keys[a]``/``ids[a]`` (k entries, any order, empty ones ``(inf, int64 max)``) become
    the k smallest of themselves and the ``part_count[a]`` partial entries of row a."""
    k = keys.shape[1]
    scratch_keys = np.empty(k + part_keys.shape[1])
    scratch_ids = np.empty(k + part_keys.shape[1], dtype=np.int64)
    for a in range(keys.shape[0]):
        m = part_count[a]
        if m == 0:
            continue
        scratch_keys[:k] = keys[a]
        scratch_ids[:k] = ids[a]
        scratch_keys[k:k + m] = part_keys[a, :m]
        scratch_ids[k:k + m] = part_ids[a, :m]
        select_smallest(scratch_keys, scratch_ids, k + m, k)
        keys[a] = scratch_keys[:k]
        ids[a] = scratch_ids[:k]
