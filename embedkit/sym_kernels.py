"""Numba kernels of the symmetric self-join: one upper-triangle tile feeds the anchors of its
rows and of its columns (see :mod:`embedkit.tiles` for the schedule). Here: the running
top-k as heaps (small k) and the semi-hard / easy bands; the large-k form (filtered tiles,
buffered selections) is :mod:`embedkit.sym_select`."""

from __future__ import annotations

import numpy as np
from numba import njit

from embedkit.kernels import lower_bound

# -- symmetric mining kernels ----------------------------------------------------------------
# One tile ``g = X_I · X_Jᵀ`` of the upper triangle feeds the anchors of its rows (row-wise)
# and of its columns (column-wise) with the same key ``v = max(‖a‖² + ‖b‖² − 2g, 0)`` for
# both sides. On a diagonal tile (``diagonal``: I == J) only the entries ``r < c`` are pairs.
# Pass 1 is branch-free (it vectorises): per row and per column, "could any key of this
# tile enter the state?" against a bound taken from the state at the tile's start (states
# only tighten, so the bound never misses; only the upper bound is tested: a lower one in
# the same loop stops it vectorising). Pass 2 redoes the rows and columns flagged with
# the exact comparisons. Every state is ordered by the total order (key, row), so the
# result does not depend on the order pairs arrive in. Labels: pairs with equal labels are
# skipped (pass distinct codes, e.g. ``arange(n)``, to keep every pair).


#: Pass 1 flags segments of this many columns of a row (and rows of a column), so pass 2
#: redoes 64 pairs per improvement, not a whole tile row.
SEGMENT = 64


@njit(nogil=True, cache=True)
def _count_below(g_row, col_terms, col_labels, a_term, a_label, hi):  # type: ignore[no-untyped-def]
    """Pairs of one row segment with another label and key (before clipping) <= ``hi``."""
    hits = 0
    for c in range(g_row.shape[0]):
        v = a_term + col_terms[c] - 2.0 * g_row[c]
        hits += (v <= hi) & (col_labels[c] != a_label)
    return hits


@njit(nogil=True, cache=True)
def _row_hits(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, row_hi, row_hit,
):
    """``row_hit[r, s]`` = columns ``s·SEGMENT …`` of row r hold a pair with another label and
    key <= ``row_hi[r]`` (the key before clipping at 0: the same verdict for any bound)."""
    n_rows, n_cols = g.shape
    for r in range(n_rows):
        first = r + 1 if diagonal else 0
        for s in range(row_hit.shape[1]):
            c0 = max(first, s * SEGMENT)
            c1 = min(n_cols, (s + 1) * SEGMENT)
            row_hit[r, s] = c0 < c1 and _count_below(g[r, c0:c1], col_terms[c0:c1], col_labels[c0:c1],
                                                     row_terms[r], row_labels[r], row_hi[r]) > 0


@njit(nogil=True, cache=True)
def _col_hits_of(  # type: ignore[no-untyped-def]
    g, diagonal, row0, row_terms, col_terms, row_labels, col_labels, col_hi, col_hit,
):
    """``col_hit[c]`` over the rows of ``g`` (rows ``row0 …`` of the tile)."""
    n_rows, n_cols = g.shape
    col_hit[:] = False
    for r in range(n_rows):
        a_term = row_terms[r]
        a_label = row_labels[r]
        for c in range(row0 + r + 1 if diagonal else 0, n_cols):
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            col_hit[c] |= (v <= col_hi[c]) & (col_labels[c] != a_label)


@njit(nogil=True, cache=True)
def _col_hits(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, col_hi, col_hit,
):
    """``col_hit[s, c]``, as :func:`_row_hits` for the columns over rows ``s·SEGMENT …``.
    The loops live in small functions of their own: fused, or reducing and storing in one
    loop, they do not vectorise (measured 3-10× slower)."""
    n_rows = g.shape[0]
    for s in range(col_hit.shape[0]):
        r0 = s * SEGMENT
        r1 = min(n_rows, r0 + SEGMENT)
        _col_hits_of(g[r0:r1], diagonal, r0, row_terms[r0:r1], col_terms, row_labels[r0:r1], col_labels, col_hi,
                     col_hit[s])


@njit(nogil=True, cache=True)
def _hits(g, diagonal, row_terms, col_terms, row_labels, col_labels, row_hi, col_hi):  # type: ignore[no-untyped-def]
    n_rows, n_cols = g.shape
    row_hit = np.empty((n_rows, (n_cols + SEGMENT - 1) // SEGMENT), dtype=np.bool_)
    col_hit = np.empty(((n_rows + SEGMENT - 1) // SEGMENT, n_cols), dtype=np.bool_)
    _row_hits(g, diagonal, row_terms, col_terms, row_labels, col_labels, row_hi, row_hit)
    _col_hits(g, diagonal, row_terms, col_terms, row_labels, col_labels, col_hi, col_hit)
    return row_hit, col_hit


@njit(nogil=True, cache=True, inline="always")
def _ranks_after(key_a, id_a, key_b, id_b):  # type: ignore[no-untyped-def]
    """(key, row) order: a comes after b."""
    if key_a != key_b:
        return key_a > key_b
    return id_a > id_b


@njit(nogil=True, cache=True)
def heap_offer(keys, ids, key, ident):  # type: ignore[no-untyped-def]
    """Offer ``(key, ident)`` to a max-heap (root = last kept in (key, row) order) of the k
    smallest; empty entries are ``(inf, int64 max)``. Infinite or NaN keys never enter."""
    if not key < np.inf:
        return
    if not _ranks_after(keys[0], ids[0], key, ident):
        return
    k = keys.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and _ranks_after(keys[right], ids[right], keys[child], ids[child]):
            child = right
        if _ranks_after(keys[child], ids[child], key, ident):
            keys[pos] = keys[child]
            ids[pos] = ids[child]
            pos = child
        else:
            break
    keys[pos] = key
    ids[pos] = ident


@njit(nogil=True, cache=True)
def merge_heaps(keys, ids, part_keys, part_ids):  # type: ignore[no-untyped-def]
    """Offer every entry of the partial heaps to the running ones, row by row."""
    for r in range(keys.shape[0]):
        for t in range(part_keys.shape[1]):
            heap_offer(keys[r], ids[r], part_keys[r, t], part_ids[r, t])


#: With more neighbours per row than this, a tile where more than DENSE_SHARE of the
#: segments were flagged (early in a scan, most are) is redone in one fused pass rather
#: than segment by segment.
DENSE_K = 8
DENSE_SHARE = 0.25


@njit(nogil=True, cache=True)
def _flush_columns(  # type: ignore[no-untyped-def]
    count, cand_c, cand_r, cand_v, col0, row0, col_keys, col_ids, col_root, col_bound,
):
    """Offer buffered column candidates grouped by column (a column's heap stays in cache)."""
    n_cols = col_keys.shape[0]
    starts = np.zeros(n_cols + 1, dtype=np.int64)
    for t in range(count):
        starts[cand_c[t] + 1] += 1
    for c in range(n_cols):
        starts[c + 1] += starts[c]
    order = np.empty(count, dtype=np.int64)
    fill = starts[:n_cols].copy()
    for t in range(count):
        c = cand_c[t]
        order[fill[c]] = t
        fill[c] += 1
    for c in range(n_cols):
        if starts[c] == starts[c + 1]:
            continue
        keys = col_keys[c]
        ids = col_ids[c]
        for u in range(starts[c], starts[c + 1]):
            t = order[u]
            heap_offer(keys, ids, cand_v[t], row0 + cand_r[t])
        col_root[c] = min(keys[0], col_bound[c])


@njit(nogil=True, cache=True)
def _topk_dense(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, row0, col0, row_keys, row_ids, col_keys, col_ids,
    row_root, col_root, row_bound, col_bound,
):
    """:func:`sym_topk_tile` in one pass: each key is compared with both heaps' roots (kept in
    ``row_root``/``col_root``, stale only upwards, so nothing is missed). Row offers go
    straight to the row's heap; column offers are buffered and flushed column by column."""
    n_rows, n_cols = g.shape
    capacity = 1 << 14
    cand_c = np.empty(capacity, dtype=np.int64)
    cand_r = np.empty(capacity, dtype=np.int64)
    cand_v = np.empty(capacity)
    count = 0
    for r in range(n_rows):
        a_term = row_terms[r]
        a_label = row_labels[r]
        if diagonal and count > 0:  # row r's heap is column r's: take its buffered offers first
            _flush_columns(count, cand_c, cand_r, cand_v, col0, row0, col_keys, col_ids, col_root, col_bound)
            count = 0
        root = min(row_keys[r, 0], row_bound[r]) if diagonal and row_root[r] > -np.inf else row_root[r]
        keys = row_keys[r]
        ids = row_ids[r]
        if count + n_cols > capacity:
            _flush_columns(count, cand_c, cand_r, cand_v, col0, row0, col_keys, col_ids, col_root, col_bound)
            count = 0
        for c in range(r + 1 if diagonal else 0, n_cols):
            v = a_term + col_terms[c] - 2.0 * g[r, c]
            if v <= root or v <= col_root[c]:
                if col_labels[c] == a_label:
                    continue
                w = v if v > 0.0 else 0.0
                if v <= root:
                    heap_offer(keys, ids, w, col0 + c)
                    root = min(keys[0], row_bound[r])
                if v <= col_root[c]:
                    cand_c[count] = c
                    cand_r[count] = r
                    cand_v[count] = w
                    count += 1
    if count > 0:
        _flush_columns(count, cand_c, cand_r, cand_v, col0, row0, col_keys, col_ids, col_root, col_bound)


@njit(nogil=True, cache=True)
def sym_topk_tile(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, row0, col0,
    row_keys, row_ids, row_on, row_bound, col_keys, col_ids, col_on, col_bound,
):
    """Feed a tile to the k-smallest heaps of its rows (``row_keys[r]``, offered
    ``(v, col0 + c)``) and of its columns (``col_keys[c]``, offered ``(v, row0 + r)``);
    anchors with ``*_on`` false are left alone. The heaps may alias (diagonal tile).
    ``*_bound``: a key no final entry of that anchor exceeds (``inf``: unknown); keys
    above it are not offered."""
    n_rows, n_cols = g.shape
    row_hi = np.empty(n_rows)
    col_hi = np.empty(n_cols)
    for r in range(n_rows):
        row_hi[r] = min(row_keys[r, 0], row_bound[r]) if row_on[r] else -np.inf
    for c in range(n_cols):
        col_hi[c] = min(col_keys[c, 0], col_bound[c]) if col_on[c] else -np.inf
    row_hit, col_hit = _hits(g, diagonal, row_terms, col_terms, row_labels, col_labels, row_hi, col_hi)
    if row_keys.shape[1] > DENSE_K and row_hit.sum() + col_hit.sum() > DENSE_SHARE * (row_hit.size + col_hit.size):
        _topk_dense(g, diagonal, row_terms, col_terms, row_labels, col_labels, row0, col0, row_keys, row_ids,
                    col_keys, col_ids, row_hi, col_hi, row_bound, col_bound)
        return
    for r in range(n_rows):
        a_term = row_terms[r]
        a_label = row_labels[r]
        keys = row_keys[r]
        ids = row_ids[r]
        first = r + 1 if diagonal else 0
        for s in range(row_hit.shape[1]):
            if not row_hit[r, s]:
                continue
            for c in range(max(first, s * SEGMENT), min(n_cols, (s + 1) * SEGMENT)):
                v = a_term + col_terms[c] - 2.0 * g[r, c]
                if v <= keys[0] and v <= row_bound[r] and col_labels[c] != a_label:
                    heap_offer(keys, ids, v if v > 0.0 else 0.0, col0 + c)
    # Flagged columns are swept row by row within their segment (memory order, not down columns).
    for s in range(col_hit.shape[0]):
        flagged = np.flatnonzero(col_hit[s])
        if len(flagged) == 0:
            continue
        for r in range(s * SEGMENT, min(n_rows, (s + 1) * SEGMENT)):
            a_term = row_terms[r]
            a_label = row_labels[r]
            for c in flagged:
                if diagonal and c <= r:
                    continue
                v = a_term + col_terms[c] - 2.0 * g[r, c]
                if v <= col_keys[c, 0] and v <= col_bound[c] and col_labels[c] != a_label:
                    heap_offer(col_keys[c], col_ids[c], v if v > 0.0 else 0.0, row0 + r)


@njit(nogil=True, cache=True, inline="always")
def _band_bounds(ptr, first, count, low, high, best_v, offset, lo, hi, shrink):  # type: ignore[no-untyped-def]
    """Per anchor ``first + t``: the lowest ``low`` of its slots and the largest ``high``
    (each capped by the slot's best key so far when ``shrink``); none: an empty band."""
    for t in range(count):
        s0 = ptr[first + t]
        s1 = ptr[first + t + 1]
        if s0 == s1:
            lo[t] = np.inf
            hi[t] = -np.inf
            continue
        lo[t] = low[s0]
        top = -np.inf
        for s in range(s0, s1):
            h = high[s]
            if shrink and best_v[s - offset] < h:
                h = best_v[s - offset]
            if h > top:
                top = h
        hi[t] = top


@njit(nogil=True, cache=True, inline="always")
def _offer_band(  # type: ignore[no-untyped-def]
    v, other, ptr, anchor, low, high, best_v, best_j, offset, emit, out_slot, out_j, out_v, count,
):
    """Offer key ``v`` of row ``other`` to the slots of ``anchor`` whose band holds it."""
    s_first = ptr[anchor]
    s_last = ptr[anchor + 1]
    if s_first == s_last or v <= low[s_first] or v > high[s_last - 1]:
        return count
    s0 = lower_bound(high, s_first, s_last, v)
    s1 = lower_bound(low, s_first, s_last, v)
    for s in range(s0, s1):
        if emit:
            if count < out_slot.shape[0]:
                out_slot[count] = s
                out_j[count] = other
                out_v[count] = v
            count += 1
        else:
            t = s - offset
            if v < best_v[t] or (v == best_v[t] and other < best_j[t]):
                best_v[t] = v
                best_j[t] = other
    return count


@njit(nogil=True, cache=True)
def sym_band_tile(  # type: ignore[no-untyped-def]
    g, diagonal, row_terms, col_terms, row_labels, col_labels, row0, col0, ptr, low, high,
    best_v, best_j, offset, emit, out_slot, out_j, out_v, count,
):
    """Band search of one tile from both sides. Slots as in :func:`band_closest_tile` but
    indexed by row: anchor ``a`` owns slots ``ptr[a]:ptr[a + 1]`` (global ``low``/``high``).
    Without ``emit``: keep per slot the smallest ``(v, row)`` in its band in
    ``best_v/best_j[s − offset]`` (the state of the slots from ``offset`` on). With ``emit``:
    write every ``(slot, other row, v)`` as :func:`band_all_tile` does and return the count."""
    n_rows, n_cols = g.shape
    row_lo = np.empty(n_rows)
    row_hi = np.empty(n_rows)
    col_lo = np.empty(n_cols)
    col_hi = np.empty(n_cols)
    _band_bounds(ptr, row0, n_rows, low, high, best_v, offset, row_lo, row_hi, not emit)
    _band_bounds(ptr, col0, n_cols, low, high, best_v, offset, col_lo, col_hi, not emit)
    row_hit, col_hit = _hits(g, diagonal, row_terms, col_terms, row_labels, col_labels, row_hi, col_hi)
    for r in range(n_rows):
        a_term = row_terms[r]
        a_label = row_labels[r]
        first = r + 1 if diagonal else 0
        for s in range(row_hit.shape[1]):
            if not row_hit[r, s]:
                continue
            for c in range(max(first, s * SEGMENT), min(n_cols, (s + 1) * SEGMENT)):
                if col_labels[c] == a_label:
                    continue
                v = a_term + col_terms[c] - 2.0 * g[r, c]
                if v < 0.0:
                    v = 0.0
                count = _offer_band(v, col0 + c, ptr, row0 + r, low, high, best_v, best_j, offset, emit,
                                    out_slot, out_j, out_v, count)
    for s in range(col_hit.shape[0]):
        flagged = np.flatnonzero(col_hit[s])
        if len(flagged) == 0:
            continue
        for r in range(s * SEGMENT, min(n_rows, (s + 1) * SEGMENT)):
            a_term = row_terms[r]
            a_label = row_labels[r]
            for c in flagged:
                if (diagonal and c <= r) or col_labels[c] == a_label:
                    continue
                v = a_term + col_terms[c] - 2.0 * g[r, c]
                if v < 0.0:
                    v = 0.0
                count = _offer_band(v, row0 + r, ptr, col0 + c, low, high, best_v, best_j, offset, emit,
                                    out_slot, out_j, out_v, count)
    return count
