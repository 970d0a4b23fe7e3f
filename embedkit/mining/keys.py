"""The key space of exact mining, and bands in it.

Keys. Kernels compare a *key* monotone in the distance: ``v = ‖a‖² + ‖b‖² − 2a·b``
(clipped at 0), the squared Euclidean distance; for cosine the rows are L2-normalised
copies and the terms are 1, so ``v = 2·(1 − cos)``. :class:`Prepared` converts between
keys and reported distances (Euclidean ``‖a − b‖₂``, cosine distance ``1 − cos``).

Callers give thresholds as distances; :func:`make_slots` and :func:`positive_bands` convert
them to keys here, so no other module sees a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from embedkit.arrays import as_work_array, l2_normalized, mapped_file_guard
from embedkit.chunking import DEFAULT_BUDGET_MIB, rows_per_block
from embedkit.distances import Metric, centred_squared_norms, is_similarity
from embedkit.mapped import work_rows

#: Row id of a missing entry in reported results.
NO_ROW = -1


@dataclass(frozen=True)
class Prepared:
    """Embeddings in the work dtype (normalised for cosine), the centre the kernels subtract
    (for Euclidean the mean row rounded to a power-of-two grid, ``None`` for cosine) and the key terms
    ``‖x − centre‖²`` in float64."""

    x: np.ndarray
    terms: np.ndarray
    metric: Metric
    centre: np.ndarray | None = None

    def rows(self, ids: np.ndarray | slice) -> np.ndarray:
        """Rows ``ids`` centred, C-contiguous, in the work dtype."""
        mapped_file_guard(self.x)()  # a file truncated under us: one error line, not SIGBUS
        block = np.asarray(self.x[ids])
        if self.centre is None:
            return np.ascontiguousarray(block)
        return np.ascontiguousarray(block - self.centre, dtype=self.x.dtype)

    def to_distance(self, keys: np.ndarray) -> np.ndarray:
        """Keys to reported distances (Euclidean, or cosine distance ``1 − cos``)."""
        keys = np.asarray(keys, dtype=np.float64)
        return keys / 2.0 if is_similarity(self.metric) else np.sqrt(np.maximum(keys, 0.0))

    def to_key(self, distances: np.ndarray | float) -> np.ndarray:
        """Reported distances to keys (``inf`` stays ``inf``)."""
        d = np.asarray(distances, dtype=np.float64)
        return 2.0 * d if is_similarity(self.metric) else np.where(np.isinf(d), np.inf, d * d)

    def pair_keys(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Keys of pairs ``(first[k], second[k])`` computed as the kernels do (same expansion)."""
        out = np.empty(len(first), dtype=np.float64)
        step = rows_per_block(self.x.shape[1] * self.x.itemsize * 2, DEFAULT_BUDGET_MIB)
        for start in range(0, len(first), step):
            a, b = first[start:start + step], second[start:start + step]
            dots = np.einsum("ij,ij->i", self.rows(a), self.rows(b)).astype(np.float64)
            out[start:start + step] = self.terms[a] + self.terms[b] - 2.0 * dots
        np.maximum(out, 0.0, out=out)
        out[first == second] = 0.0  # a row is at distance 0 from itself, whatever the rounding
        return out


def prepare(embeddings: np.ndarray, metric: Metric) -> Prepared:
    """A :class:`Prepared` view: no copy of C-contiguous float32/float64 Euclidean input
    (tiles are centred as they are used). A matrix mapped from a file stays path-backed
    (:mod:`embedkit.mapped`: jobs pickle by path; cosine rows are normalised per block as
    tasks read them, the same arithmetic row by row), so no full copy is made or shipped."""
    by_path = work_rows(embeddings, normalise=is_similarity(metric))
    if is_similarity(metric):
        x = by_path if by_path is not None else l2_normalized(embeddings)
        return Prepared(x, np.ones(len(x), dtype=np.float64), metric)  # type: ignore[arg-type]
    from embedkit.ranking import ranking_centre

    x = by_path if by_path is not None else as_work_array(embeddings)
    # The mean on a power-of-two grid at the data's spread: integer-valued rows stay exact
    # after centring, so equal distances give equal keys and ties go to the smaller row
    # whatever the tile a product came from.
    centre = ranking_centre(x)
    return Prepared(x, centred_squared_norms(x, centre), metric, centre.astype(x.dtype))


@dataclass(frozen=True)
class Slots:
    """Anchor-positive pairs grouped by anchor: anchor ``rows[r]`` owns ``ptr[r]:ptr[r+1]``,
    sorted by ``low``; a negative with key ``low < v <= high`` is in the slot's band."""

    rows: np.ndarray
    ptr: np.ndarray
    low: np.ndarray
    high: np.ndarray


Band = Literal["semi-hard", "farther", "easy"]


def make_slots(prep: Prepared, anchors: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[Slots, np.ndarray]:
    """Slots for the bands ``low < d_an <= high``, given as distances (Euclidean ``‖a − n‖₂``,
    or cosine distance ``1 − cos``; ``inf`` = unbounded), grouped by anchor and sorted by
    ``low``; also the permutation applied. ``high`` must not decrease with ``low``."""
    return _slots_from_keys(anchors, prep.to_key(low), prep.to_key(high))


def positive_bands(prep: Prepared, anchors: np.ndarray, positives: np.ndarray, band: Band, *,
                   margin: float, squared: bool = False) -> tuple[Slots, np.ndarray]:
    """Slots around each (anchor, positive) pair's own distance ``d_ap``:

    - ``semi-hard``: ``d_ap < d_an <= d_ap + margin`` (FaceNet);
    - ``farther``: ``d_an > d_ap`` (TF-Addons' semi-hard search, no upper bound);
    - ``easy``: ``d_an > d_ap + margin`` (and never below ``d_ap``).

    With ``squared`` (Euclidean only) the margin is added to squared distances:
    ``d_ap² < d_an² <= d_ap² + margin``. ``d_ap`` is taken as the kernels compute it, so a
    negative at exactly the positive's distance is never in a band.
    """
    ap = prep.pair_keys(anchors, positives)
    shifted = ap + margin if squared else prep.to_key(prep.to_distance(ap) + margin)
    unbounded = np.full(len(ap), np.inf)
    if band == "semi-hard":
        return _slots_from_keys(anchors, ap, np.maximum(shifted, ap))
    if band == "farther":
        return _slots_from_keys(anchors, ap, unbounded)
    return _slots_from_keys(anchors, np.maximum(shifted, ap), unbounded)


def _slots_from_keys(anchors: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[Slots, np.ndarray]:
    """Group slot arrays by anchor and sort by ``low``; also return the permutation applied.

    ``high`` must be a non-decreasing function of ``low`` (true for every band used here),
    so within an anchor the slots in band for a key ``v`` are contiguous.
    """
    order = np.lexsort((high, low, anchors))
    a = anchors[order]
    rows, starts = np.unique(a, return_index=True)
    ptr = np.append(starts, len(a)).astype(np.int64)
    return Slots(rows.astype(np.int64), ptr, np.ascontiguousarray(low[order], dtype=np.float64),
                 np.ascontiguousarray(high[order], dtype=np.float64)), order


class TooMany(Exception):
    """More items than the caller allowed (converted to an OptionError by the strategies)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class Emitted:
    """Growable output buffers for the emitting kernels (a tile is rerun after growing)."""

    def __init__(self, capacity: int) -> None:
        self.a = np.empty(capacity, dtype=np.int64)
        self.b = np.empty(capacity, dtype=np.int64)
        self.v = np.empty(capacity, dtype=np.float64)
        self.count = 0

    def fits(self, count: int, max_items: int) -> bool:
        """Accept ``count`` if it fits; else grow (the caller reruns the tile) or give up."""
        if count <= len(self.a):
            self.count = count
            return True
        if count > max_items:
            raise TooMany(count)
        size = max(count, 2 * len(self.a))
        for name in ("a", "b", "v"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)
        return False


def merge_emitted(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   max_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stripes' emitted ``(first, second, key)`` items in one table sorted by ``(first, second)``;
    more than ``max_items`` in all is :class:`TooMany`."""
    first = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    if len(first) > max_items:
        raise TooMany(len(first))
    second = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    key = np.concatenate([p[2] for p in parts]) if parts else np.empty(0)
    order = np.lexsort((second, first))
    return first[order], second[order], key[order]
