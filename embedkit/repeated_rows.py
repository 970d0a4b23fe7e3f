"""Exact duplicate rows in bounded memory: rows hashed in blocks, hash groups settled by
their bytes (``-0.0`` equals ``0.0``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.choices import SCAN_BUDGET_MIB
from embedkit.chunking import row_blocks, rows_per_block


@dataclass(frozen=True)
class Duplicates:
    """Exact duplicate rows: ``rows`` repeat an earlier row; ``groups`` distinct repeated
    vectors; ``conflicting_groups`` of them carry more than one label."""

    rows: int
    groups: int
    conflicting_groups: int | None
    example: tuple[int, int] | None


def row_hashes(block: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes (``-0.0`` hashed as ``0.0``); equal rows, equal hashes."""
    rows = np.ascontiguousarray(block) + 0  # + 0 turns -0.0 into 0.0
    raw = rows.view(np.uint8).reshape(len(rows), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(raw), pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(raw).view(np.uint64)
    multipliers = np.asarray(np.random.default_rng(12345).integers(1, 2**63, words.shape[1], dtype=np.uint64))
    np.bitwise_or(multipliers, np.uint64(1), out=multipliers)
    with np.errstate(over="ignore"):
        h = np.asarray((words * multipliers[None, :]).sum(axis=1, dtype=np.uint64))
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x9E3779B97F4A7C15)
    return h


def exact_duplicates(x: np.ndarray, labels: np.ndarray | None = None, *, budget_mib: float = SCAN_BUDGET_MIB,
                     rows: np.ndarray | None = None) -> Duplicates:
    """Exact duplicate rows (equal bytes, ``-0.0`` equal to ``0.0``), in bounded memory.

    Pass 1 hashes the rows in blocks. Rows sharing a hash are then compared, in further
    passes over the file in blocks, with the first row of their hash group; the first
    rows kept for comparison fit ``budget_mib`` (more groups: more passes). Only rows of
    a hash group holding two different vectors (a 64-bit collision) are compared by
    copying them. Beyond the row blocks, memory is a few 8-byte words per row.
    ``rows`` (a boolean mask) restricts the search to those rows; row numbers in the
    result are the matrix's own.
    """
    n, dim = x.shape
    width = dim * x.dtype.itemsize
    step = rows_per_block(width * 3, budget_mib)
    hashes = np.empty(n, dtype=np.uint64)
    for start, stop, block in row_blocks(x, step):
        hashes[start:stop] = row_hashes(block)
    order = np.flatnonzero(rows) if rows is not None else np.arange(n)
    order = order[np.argsort(hashes[order], kind="stable")]  # by hash, ties by row
    sorted_hashes = hashes[order]
    del hashes
    starts_group = np.ones(len(order), dtype=bool)
    starts_group[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    del sorted_hashes
    group_of = np.cumsum(starts_group) - 1
    group_sizes = np.bincount(group_of)
    shared = group_sizes[group_of] > 1
    if not shared.any():
        return Duplicates(0, 0, 0 if labels is not None else None, None)
    candidates = order[shared]                      # sorted by hash group, then row
    group = np.cumsum(starts_group[shared]) - 1     # hash group 0..G-1 of each candidate
    del order, starts_group, group_of, shared
    first_of_group = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    representative = candidates[first_of_group]     # the smallest row of each group
    groups = len(first_of_group)
    group_of_row = np.full(n, -1, dtype=np.int64)
    group_of_row[candidates] = group
    differs = _differs_from_representative(x, group_of_row, representative, step, budget_mib)
    vector_group = group
    if differs.any():  # distinct rows with one hash: settle those groups by their bytes
        vector_group = _split_collisions(x, candidates, group, np.unique(group_of_row[differs]), groups)
    del group_of_row
    _, vector_group, sizes = np.unique(vector_group, return_inverse=True, return_counts=True)
    vector_group = vector_group.reshape(-1)
    repeated = np.flatnonzero(sizes > 1)
    conflicting = None
    if labels is not None:
        pairs = np.unique(np.stack([vector_group, np.asarray(labels)[candidates]], axis=1), axis=0)
        per_group = np.bincount(pairs[:, 0], minlength=len(sizes))
        conflicting = int((per_group[repeated] > 1).sum())
    example = None
    if len(repeated):
        first_row = np.full(len(sizes), np.iinfo(np.int64).max)
        np.minimum.at(first_row, vector_group, candidates)
        g = repeated[np.argmin(first_row[repeated])]
        members = np.sort(candidates[vector_group == g])
        example = (int(members[0]), int(members[1]))
    return Duplicates(rows=int(len(candidates) - len(sizes)), groups=int(len(repeated)),
                      conflicting_groups=conflicting, example=example)


def _canonical_bytes(block: np.ndarray) -> np.ndarray:
    """Rows as bytes, ``-0.0`` made ``0.0`` (the equality :func:`row_hashes` hashes)."""
    rows = np.ascontiguousarray(block) + 0
    return rows.view(np.uint8).reshape(len(rows), -1)


def _differs_from_representative(x: np.ndarray, group_of_row: np.ndarray, representative: np.ndarray,
                                 step: int, budget_mib: float) -> np.ndarray:
    """Row mask: rows whose bytes differ from their hash group's first row.

    Reads ``x`` in row blocks, once per batch of groups whose first rows fit the budget."""
    n = len(group_of_row)
    width = max(1, x.shape[1] * x.dtype.itemsize)
    per_pass = max(1, int(budget_mib * 2**20) // width)
    differs = np.zeros(n, dtype=bool)
    for g0 in range(0, len(representative), per_pass):
        g1 = min(len(representative), g0 + per_pass)
        kept = np.zeros((g1 - g0, width), dtype=np.uint8)
        for start, stop, block in row_blocks(x, step):
            g = group_of_row[start:stop]
            here = np.flatnonzero((g >= g0) & (g < g1))
            if not len(here):
                continue
            local = g[here] - g0
            raw = _canonical_bytes(np.asarray(block)[here])
            first = representative[g[here]] == start + here
            kept[local[first]] = raw[first]  # a group's first row comes before its other rows
            differs[start + here] = (raw != kept[local]).any(axis=1)
    return differs


def _split_collisions(x: np.ndarray, candidates: np.ndarray, group: np.ndarray, collided: np.ndarray,
                      groups: int) -> np.ndarray:
    """Group ids by exact bytes for the hash groups in ``collided``; other groups keep theirs."""
    out = group.copy()
    inside = np.flatnonzero(np.isin(group, collided))
    raw = _canonical_bytes(np.asarray(x[np.sort(candidates[inside])]))
    order = np.argsort(candidates[inside])
    keys = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, exact = np.unique(keys, return_inverse=True)
    out[inside[order]] = groups + exact.reshape(-1)
    return out
