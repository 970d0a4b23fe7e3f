"""Pair and triplet sets derived from labels, and checks of user-given pair/triplet tables.

Canonical orders (used for traces and per-item output): pairs ``(i, j)`` with ``i < j``
in row-major order; triplets ``(a, p, n)`` lexicographic, ``p ≠ a`` with ``label[p] ==
label[a]`` and ``label[n] != label[a]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from embedkit.errors import InputError


def class_sizes(labels: np.ndarray) -> np.ndarray:
    """Number of rows of each label code."""
    return np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)


def count_label_pairs(labels: np.ndarray) -> tuple[int, int]:
    """``(similar, dissimilar)`` unordered pair counts (``i < j``).

    >>> count_label_pairs(np.array([0, 0, 1, 1]))
    (2, 4)
    """
    n = len(labels)
    sizes = class_sizes(labels).astype(np.int64)
    similar = int((sizes * (sizes - 1) // 2).sum())
    return similar, n * (n - 1) // 2 - similar


def count_label_triplets(labels: np.ndarray) -> int:
    """Valid triplets ``Σ_c n_c·(n_c − 1)·(n − n_c)`` (ordered anchor/positive)."""
    sizes = class_sizes(labels).astype(np.int64)
    return int((sizes * (sizes - 1) * (len(labels) - sizes)).sum())


def upper_pairs(n: int, max_pairs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of pairs ``(i, j)``, ``i < j``, in canonical order; at most ``max_pairs`` each
    (a single row's pairs when one row alone exceeds it)."""
    row = 0
    while row < n - 1:
        first = row
        total = 0
        while row < n - 1 and (total == 0 or total + (n - 1 - row) <= max_pairs):
            total += n - 1 - row
            row += 1
        counts = n - 1 - np.arange(first, row)
        i = np.repeat(np.arange(first, row, dtype=np.int64), counts)
        starts = np.repeat(np.arange(first, row, dtype=np.int64) + 1, counts)
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        yield i, starts + offsets


def first_upper_pairs(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` canonical pairs."""
    i_parts, j_parts, have = [], [], 0
    for i, j in upper_pairs(n, max(1, count)):
        i_parts.append(i)
        j_parts.append(j)
        have += len(i)
        if have >= count:
            break
    if not i_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(i_parts)[:count], np.concatenate(j_parts)[:count]


def members_by_label(labels: np.ndarray) -> list[np.ndarray]:
    """Row indices of each label code, ascending."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(class_sizes(labels))[:-1]
    return np.split(order, bounds)


def first_pair_per_class(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(anchors, positives, skipped)``: the first two rows of each class with two or more
    rows, classes in label order; ``skipped`` counts the classes of one row."""
    anchors, positives, skipped = [], [], 0
    for rows in members_by_label(labels):
        if len(rows) < 2:
            skipped += 1
            continue
        anchors.append(rows[0])
        positives.append(rows[1])
    return np.asarray(anchors, np.int64), np.asarray(positives, np.int64), skipped


def check_indices(columns: dict[str, np.ndarray], names: tuple[str, ...], rows: int, source: str) -> None:
    """Every index column is within ``0 .. rows-1``."""
    for name in names:
        values = columns[name]
        bad = np.flatnonzero((values < 0) | (values >= rows))
        if len(bad):
            k = int(bad[0])
            raise InputError(
                f"{source}: row {k} has {name}={int(values[k])}, outside 0..{rows - 1} "
                f"(the embeddings have {rows} rows; {len(bad)} such {'row' if len(bad) == 1 else 'rows'})"
            )


def check_binary(values: np.ndarray, name: str, source: str) -> np.ndarray:
    """A 0/1 label column as bool; anything else is an error."""
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        k = int(bad[0])
        raise InputError(f"{source}: row {k} has {name}={values[k]}; expected 0 (dissimilar) or 1 (similar)")
    return values.astype(bool)


def check_triplets(columns: dict[str, np.ndarray], labels: np.ndarray | None, source: str) -> None:
    """Anchors differ from positives; with labels, positives share and negatives differ."""
    a, p, n = columns["anchor"], columns["positive"], columns["negative"]
    same = np.flatnonzero(a == p)
    if len(same):
        raise InputError(f"{source}: row {int(same[0])} has anchor == positive ({int(a[same[0]])})")
    if labels is None:
        return
    wrong_pos = np.flatnonzero(labels[a] != labels[p])
    if len(wrong_pos):
        k = int(wrong_pos[0])
        raise InputError(f"{source}: row {k}: positive {int(p[k])} has another label than anchor {int(a[k])}")
    wrong_neg = np.flatnonzero(labels[a] == labels[n])
    if len(wrong_neg):
        k = int(wrong_neg[0])
        raise InputError(f"{source}: row {k}: negative {int(n[k])} has the same label as anchor {int(a[k])}")
