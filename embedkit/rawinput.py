"""Loading embeddings that may hold NaN or Inf rows, for ``inspect`` and ``check``.

:func:`embedkit.io.load_dataset` refuses non-finite embeddings (exit 2: the tool cannot
compute a loss on them). ``inspect`` must *report* them and ``check --require
nan_rows==0`` must *fail* on them (exit 1), so this module loads the matrix without that
check, counts the non-finite rows in blocks, and keeps them in the :class:`Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import row_blocks
from embedkit.chunking import rows_per_block
from embedkit.io import Dataset, load_dataset


@dataclass(frozen=True)
class LoadedEmbeddings:
    """A dataset plus its non-finite row counts; ``finite`` is the row mask (all True
    when ``nonfinite_rows == 0``). With non-finite rows, ``dataset.embeddings`` holds them."""

    dataset: Dataset
    nan_rows: int
    inf_rows: int
    finite: np.ndarray

    @property
    def nonfinite_rows(self) -> int:
        return int(len(self.finite) - self.finite.sum())


def nonfinite_masks(embeddings: np.ndarray, *, budget_mib: float = 32.0) -> tuple[np.ndarray, np.ndarray]:
    """``(has_nan, has_inf)`` row masks, scanned in blocks (memory maps are never loaded whole)."""
    n = embeddings.shape[0]
    has_nan = np.zeros(n, dtype=bool)
    has_inf = np.zeros(n, dtype=bool)
    step = rows_per_block(max(1, embeddings.shape[1]) * embeddings.dtype.itemsize, budget_mib)
    for start, stop, block in row_blocks(embeddings, step):
        has_nan[start:stop] = np.isnan(block).any(axis=1)
        has_inf[start:stop] = np.isinf(block).any(axis=1)
    return has_nan, has_inf


def load_allowing_nonfinite(
    path: str | None,
    *,
    column: str | None = None,
    label_column: str | None = None,
    labels_path: str | None = None,
    id_column: str | None = None,
) -> LoadedEmbeddings:
    """Like :func:`embedkit.io.load_dataset`, but rows with NaN or Inf are counted, not refused."""
    dataset = load_dataset(path, column=column, label_column=label_column, labels_path=labels_path,
                           id_column=id_column, require_finite=False)
    has_nan, has_inf = nonfinite_masks(dataset.embeddings)
    finite = ~(has_nan | has_inf)
    return LoadedEmbeddings(dataset, int(has_nan.sum()), int((has_inf & ~has_nan).sum()), finite)
