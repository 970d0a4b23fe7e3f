"""Which positives each anchor is paired with: all, the farthest (hardest), the nearest,
or ``count`` random ones (reproducible with the spec's seed)."""

from __future__ import annotations

import numpy as np

from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.errors import OptionError
from embedkit.mining.keys import Prepared
from embedkit.mining.spec import DEFAULT_MAX_ITEMS, PositiveChoice
from embedkit.pairs import members_by_label


def choose_positives(
    prep: Prepared, labels: np.ndarray, choice: PositiveChoice, count: int, rng: np.random.Generator,
    *, max_items: int = DEFAULT_MAX_ITEMS, budget_mib: float = DEFAULT_BUDGET_MIB,
) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, positives)`` for every row whose label has another row.

    ``all``: every other row of the label; ``hardest``/``nearest``: the farthest/nearest one
    (exact, ties to the smaller row); ``random``: ``count`` distinct ones (all when fewer).
    Sorted by anchor, then positive.
    """
    groups = [m for m in members_by_label(labels) if len(m) >= 2]
    if choice == "all":
        total = int(sum(len(m) * (len(m) - 1) for m in groups))
        if total > max_items:
            raise OptionError(f"--positives all gives {total:,} (anchor, positive) pairs (limit {max_items:,}); "
                              "use --positives random --positives-count K")
    anchors: list[np.ndarray] = []
    positives: list[np.ndarray] = []
    for members in groups:
        c = len(members)
        if choice == "all" or (choice == "random" and count >= c - 1):
            a = np.repeat(members, c - 1)
            p = np.tile(members, c).reshape(c, c)[~np.eye(c, dtype=bool)]
            anchors.append(a)
            positives.append(p)
        elif choice == "random":
            picks = _distinct_offsets(c, count, rng)  # (c, count) in 0..c-2
            picks = picks + (picks >= np.arange(c)[:, None])  # skip the anchor itself
            anchors.append(np.repeat(members, count))
            positives.append(np.sort(members[picks], axis=1).ravel())
        else:
            anchors.append(members)
            positives.append(_extreme_positive(prep, members, farthest=choice == "hardest", budget_mib=budget_mib))
    if not anchors:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a, p = np.concatenate(anchors), np.concatenate(positives)
    order = np.lexsort((p, a))
    return a[order].astype(np.int64), p[order].astype(np.int64)


def _distinct_offsets(c: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(c, count)`` distinct values per row from ``0 .. c-2`` (``count < c - 1``)."""
    if count * 2 > c - 1:
        return np.argsort(rng.random((c, c - 1)), axis=1)[:, :count]
    picks = rng.integers(0, c - 1, size=(c, count))
    while True:
        ordered = np.sort(picks, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1) if count > 1 else np.zeros(c, bool)
        if not clash.any():
            return picks
        picks[clash] = rng.integers(0, c - 1, size=(int(clash.sum()), count))


def _extreme_positive(prep: Prepared, members: np.ndarray, *, farthest: bool, budget_mib: float) -> np.ndarray:
    """Per member, the farthest (or nearest) other member; self excluded by id."""
    out = np.empty(len(members), dtype=np.int64)
    cols = prep.rows(members)
    terms = prep.terms[members]
    step = rows_per_block(len(members) * 8 * 2, budget_mib)
    for start, stop in blocks(len(members), step):
        keys = terms[start:stop, None] + terms[None, :] - 2.0 * (cols[start:stop] @ cols.T)
        np.maximum(keys, 0.0, out=keys)
        own = np.arange(start, stop)
        keys[own - start, own] = -np.inf if farthest else np.inf
        out[start:stop] = members[np.argmax(keys, axis=1) if farthest else np.argmin(keys, axis=1)]
    return out
