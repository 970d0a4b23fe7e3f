"""Distances and similarities, decided in one place.

Euclidean distances are reported *unsquared* (``‖a − b‖₂``) unless a name says
``squared``. Cosine is a *similarity* (larger is closer); its distance form is
``1 − cos``. Zero vectors have cosine 0 with everything.
"""

from __future__ import annotations

import numpy as np

from embedkit.arrays import mapped_file_guard, work_dtype
from embedkit.choices import DEFAULT_BUDGET_MIB, SCAN_BUDGET_MIB, Metric, RankingMetric
from embedkit.chunking import blocks, rows_per_block

METRICS: tuple[Metric, ...] = ("euclidean", "cosine")
#: Query -> corpus ranking also knows the plain inner product (a similarity).
RANKING_METRICS: tuple[RankingMetric, ...] = ("euclidean", "cosine", "dot")


def is_similarity(metric: str) -> bool:
    """True when larger values mean closer (cosine, dot product), False for distances (Euclidean)."""
    return metric in ("cosine", "dot")


def squared_norms(embeddings: np.ndarray) -> np.ndarray:
    """Row-wise ``‖x‖²`` in the work dtype."""
    x = np.asarray(embeddings, dtype=work_dtype(embeddings.dtype))
    return np.einsum("ij,ij->i", x, x)


def inverse_norms(embeddings: np.ndarray) -> np.ndarray:
    """Row-wise ``1/‖x‖``, with 0 for zero rows (so their cosine with anything is 0)."""
    norms = np.sqrt(squared_norms(embeddings))
    out = np.zeros_like(norms)
    np.divide(1.0, norms, out=out, where=norms > 0)
    return out


def paired_distances(
    embeddings: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    squared: bool = False,
    budget_mib: float = DEFAULT_BUDGET_MIB,
) -> np.ndarray:
    """Euclidean distance between rows ``first[k]`` and ``second[k]`` for every k, float64.

    Computed from the differences (no ‖a‖²+‖b‖²−2ab cancellation), in blocks of pairs.

    >>> x = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> paired_distances(x, np.array([0]), np.array([1]))
    array([5.])
    """
    out = np.empty(len(first), dtype=np.float64)
    step = rows_per_block(embeddings.shape[1] * 8 * 3, budget_mib)
    still_whole = mapped_file_guard(embeddings)  # a truncated memory-mapped file: an error, not SIGBUS
    for start, stop in blocks(len(first), step):
        still_whole()
        a = np.asarray(embeddings[first[start:stop]], dtype=np.float64)
        b = np.asarray(embeddings[second[start:stop]], dtype=np.float64)
        diff = a - b
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out if squared else np.sqrt(out)


def paired_cosines(
    embeddings: np.ndarray, first: np.ndarray, second: np.ndarray, *, budget_mib: float = DEFAULT_BUDGET_MIB
) -> np.ndarray:
    """Cosine similarity between rows ``first[k]`` and ``second[k]``, float64."""
    out = np.empty(len(first), dtype=np.float64)
    step = rows_per_block(embeddings.shape[1] * 8 * 3, budget_mib)
    still_whole = mapped_file_guard(embeddings)  # a truncated memory-mapped file: an error, not SIGBUS
    for start, stop in blocks(len(first), step):
        still_whole()
        a = np.asarray(embeddings[first[start:stop]], dtype=np.float64)
        b = np.asarray(embeddings[second[start:stop]], dtype=np.float64)
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        denom = na * nb
        dots = np.einsum("ij,ij->i", a, b)
        out[start:stop] = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return out


def block_distances(
    rows: np.ndarray, columns: np.ndarray, *, squared: bool = False,
    rows_sq: np.ndarray | None = None, columns_sq: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distances between every row of ``rows`` and of ``columns`` (a block).

    Uses ``‖a‖² + ‖b‖² − 2ab`` clipped at 0; callers zero the self-distance diagonal.
    """
    rows_sq = squared_norms(rows) if rows_sq is None else rows_sq
    columns_sq = squared_norms(columns) if columns_sq is None else columns_sq
    out = rows @ columns.T
    out *= -2.0
    out += rows_sq[:, None]
    out += columns_sq[None, :]
    np.maximum(out, 0.0, out=out)
    return out if squared else np.sqrt(out, out=out)


def column_mean(embeddings: np.ndarray, *, budget_mib: float = SCAN_BUDGET_MIB) -> np.ndarray:
    """The mean row, accumulated in float64 over blocks of rows (memory maps stay unloaded)."""
    total = np.zeros(embeddings.shape[1], dtype=np.float64)
    step = rows_per_block(embeddings.shape[1] * 8, budget_mib)
    for start, stop in blocks(len(embeddings), step):
        total += np.asarray(embeddings[start:stop], dtype=np.float64).sum(axis=0)
    return total / max(1, len(embeddings))


def centred_squared_norms(embeddings: np.ndarray, centre: np.ndarray, *, budget_mib: float = SCAN_BUDGET_MIB) -> np.ndarray:
    """Row-wise ``‖x − c‖²`` in float64, in blocks of rows."""
    out = np.empty(len(embeddings), dtype=np.float64)
    step = rows_per_block(embeddings.shape[1] * 8 * 2, budget_mib)
    for start, stop in blocks(len(embeddings), step):
        block = np.asarray(embeddings[start:stop], dtype=np.float64) - centre
        out[start:stop] = np.einsum("ij,ij->i", block, block)
    return out
