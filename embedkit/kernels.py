"""Fused numba kernels: one pass over a GEMM tile instead of several numpy passes.

A tile ``g = X[rows] · X[cols]ᵀ`` comes from BLAS; a kernel turns it into what a scan
keeps (nearest negatives, band members, top-k), without writing any other tile-sized
array. Kernels release the GIL so worker threads run them side by side. The all-pairs
loss kernels live in :mod:`embedkit.losses.pair_kernel`, the symmetric self-join kernels
in :mod:`embedkit.sym_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# -- mining kernels --------------------------------------------------------------------------
# Every mining kernel works on a tile ``g = X[rows] · X[cols]ᵀ`` and a *key*
# ``v = max(row_terms[r] + col_terms[c] − 2·g[r, c], 0)``, the squared Euclidean distance
# (row/col terms ``‖x‖²``), or ``2·(1 − cos)`` on L2-normalised rows (terms all 1). The key
# is monotone in the reported distance, so thresholds are converted once, outside, and no
# square root is taken per element. Only pairs with different labels (negatives) are seen.
# No fastmath here: thresholds may be ±inf, which fastmath is allowed to assume away.


@njit(nogil=True, cache=True)
def nearest_negatives_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_labels, col_labels, col0, near_v, near_j, far_v, far_j, track_far,
):
    """Keep each row's ``K = near_v.shape[1]`` smallest negative keys (ascending, ties to the
    smaller column, as columns arrive in ascending order) and, with ``track_far``, its
    largest negative key (ties to the smaller column)."""
    n_rows, n_cols = g.shape
    k = near_v.shape[1]
    for r in range(n_rows):
        a_term = row_terms[r]
        a_label = row_labels[r]
        worst = near_v[r, k - 1]
        far = far_v[r]
        for c in range(n_cols):
            if col_labels[c] == a_label:
                continue
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            if v < 0.0:
                v = 0.0
            if track_far and v > far:
                far = v
                far_v[r] = v
                far_j[r] = col0 + c
            if v < worst:
                pos = k - 1
                while pos > 0 and near_v[r, pos - 1] > v:
                    near_v[r, pos] = near_v[r, pos - 1]
                    near_j[r, pos] = near_j[r, pos - 1]
                    pos -= 1
                near_v[r, pos] = v
                near_j[r, pos] = col0 + c
                worst = near_v[r, k - 1]


@njit(nogil=True, cache=True, inline="always")
def lower_bound(values, lo, hi, v):  # type: ignore[no-untyped-def]
    """First index in ``values[lo:hi]`` (ascending) with ``values[i] >= v``."""
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(nogil=True, cache=True)
def band_closest_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_labels, col_labels, col0, ptr, low, high, best_v, best_j,
):
    """For every slot ``s`` (an anchor-positive pair; row r owns ``ptr[r]:ptr[r+1]``, sorted
    by ``low`` with ``high`` ascending too) keep the smallest negative key ``v`` with
    ``low[s] < v <= high[s]`` (ties to the smaller column)."""
    n_rows, n_cols = g.shape
    for r in range(n_rows):
        first = ptr[r]
        last = ptr[r + 1]
        if first == last:
            continue
        a_term = row_terms[r]
        a_label = row_labels[r]
        min_low = low[first]
        max_high = high[last - 1]
        for c in range(n_cols):
            if col_labels[c] == a_label:
                continue
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            if v < 0.0:
                v = 0.0
            if v <= min_low or v > max_high:
                continue
            # Slots with high >= v start at s0; slots with low < v end before s1.
            s0 = lower_bound(high, first, last, v)
            s1 = lower_bound(low, first, last, v)
            for s in range(s0, s1):
                if v < best_v[s]:
                    best_v[s] = v
                    best_j[s] = col0 + c


@njit(nogil=True, cache=True)
def band_all_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_labels, col_labels, col0, ptr, low, high,
    out_slot, out_j, out_v, count,
):
    """Emit every (slot, column, key) with ``low[slot] < v <= high[slot]`` (slots as in
    :func:`band_closest_tile`). Writes while there is room; returns the new total count,
    which exceeds the buffers' length when the caller must grow them and rerun the tile."""
    n_rows, n_cols = g.shape
    capacity = out_slot.shape[0]
    for r in range(n_rows):
        first = ptr[r]
        last = ptr[r + 1]
        if first == last:
            continue
        a_term = row_terms[r]
        a_label = row_labels[r]
        min_low = low[first]
        max_high = high[last - 1]
        for c in range(n_cols):
            if col_labels[c] == a_label:
                continue
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            if v < 0.0:
                v = 0.0
            if v <= min_low or v > max_high:
                continue
            s0 = lower_bound(high, first, last, v)
            s1 = lower_bound(low, first, last, v)
            for s in range(s0, s1):
                if count < capacity:
                    out_slot[count] = s
                    out_j[count] = col0 + c
                    out_v[count] = v
                count += 1
    return count


@njit(nogil=True, cache=True)
def pairs_below_tile(  # type: ignore[no-untyped-def]
    g, row_terms, col_terms, row_labels, col_labels, row0, col0, limit, out_i, out_j, out_v, count,
):
    """Emit every negative pair ``(i, j)``, ``i < j``, with key ``v < limit``; returns the new
    count (growing past the buffers' length means: grow and rerun, as :func:`band_all_tile`)."""
    n_rows, n_cols = g.shape
    capacity = out_i.shape[0]
    for r in range(n_rows):
        i = row0 + r
        start = i - col0 + 1 if i >= col0 else 0
        a_term = row_terms[r]
        a_label = row_labels[r]
        for c in range(start, n_cols):
            if col_labels[c] == a_label:
                continue
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            if v < 0.0:
                v = 0.0
            if v < limit:
                if count < capacity:
                    out_i[count] = i
                    out_j[count] = col0 + c
                    out_v[count] = v
                count += 1
    return count


@njit(nogil=True, cache=True, inline="always")
def _worse(key_a: float, id_a: int, key_b: float, id_b: int) -> bool:
    """Ranking order of query -> corpus top-k: a ranks after b (smaller key, or equal key
    and larger corpus row)."""
    if key_a != key_b:
        return key_a < key_b
    return id_a > id_b


@njit(nogil=True, cache=True, inline="always")
def _heap_replace_root(keys, ids, key, ident):  # type: ignore[no-untyped-def]
    """Replace the root (the worst kept entry) of a heap ordered by :func:`_worse` and sift down."""
    k = keys.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and _worse(keys[right], ids[right], keys[child], ids[child]):
            child = right
        if _worse(keys[child], ids[child], key, ident):
            keys[pos] = keys[child]
            ids[pos] = ids[child]
            pos = child
        else:
            break
    keys[pos] = key
    ids[pos] = ident


@njit(nogil=True, cache=True, fastmath=True)
def _row_bound(row, query_sq, corpus_sq, distance):  # type: ignore[no-untyped-def]
    """About the largest key of a tile row, in one vectorised float32 pass. Exact for
    similarities (a maximum involves no arithmetic); fastmath may round the Euclidean
    bound differently from the keys, and the caller allows for it."""
    best = np.float32(-np.inf)
    if distance:
        two = np.float32(2.0)
        for j in range(row.shape[0]):
            best = max(best, two * row[j] - corpus_sq[j])
        return best - query_sq
    for j in range(row.shape[0]):
        best = max(best, row[j])
    return best


@njit(nogil=True, cache=True)
def topk_tile(tile, first_col, query_sq, corpus_sq, distance, keys, ids):  # type: ignore[no-untyped-def]
    """Merge a score tile into running per-query heaps of the k best corpus rows.

    ``tile[i, j]`` = ⟨q_i, c_{first_col+j}⟩ (float32, from BLAS). For similarities the key
    is the tile value; with ``distance`` the key is ``-(‖q‖² + ‖c‖² − 2⟨q, c⟩)`` (the squared
    Euclidean distance, negated, in float32). ``keys[i]``/``ids[i]`` is query i's heap (root =
    worst kept entry); an entry enters when it ranks before the root: larger key, or equal
    key and smaller corpus row. Heaps start at ``key = -inf, id = int64 max``.
    """
    rows, cols = tile.shape
    two = np.float32(2.0)
    for i in range(rows):
        hk = keys[i]
        hi = ids[i]
        top_key = hk[0]
        top_id = hi[0]
        # Most rows of a tile hold nothing better than the current k-th: one vectorised pass
        # proves it (with a relative allowance for the rounding of the fast Euclidean bound).
        if distance:
            bound = _row_bound(tile[i], query_sq[i], corpus_sq, distance)
            slack = 1e-4 * (abs(bound) + abs(top_key) + abs(query_sq[i])) + 1e-30
        else:
            bound = _row_bound(tile[i], np.float32(0.0), corpus_sq, distance)
            slack = 0.0
        if bound + slack < top_key:
            continue
        if distance:
            qs = query_sq[i]
            for j in range(cols):
                key = -((qs + corpus_sq[j]) - two * tile[i, j])
                col = first_col + j
                if key > top_key or (key == top_key and col < top_id):
                    _heap_replace_root(hk, hi, key, col)
                    top_key = hk[0]
                    top_id = hi[0]
        else:
            for j in range(cols):
                key = tile[i, j]
                col = first_col + j
                if key > top_key or (key == top_key and col < top_id):
                    _heap_replace_root(hk, hi, key, col)
                    top_key = hk[0]
                    top_id = hi[0]
