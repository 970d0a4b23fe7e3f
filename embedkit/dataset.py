"""The data model: :class:`Dataset` (embeddings, label codes, ids, shard map), label
encoding, and the non-finite row summary that ``inspect`` and ``check`` report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embedkit.choices import SCAN_BUDGET_MIB
from embedkit.chunking import row_blocks, rows_per_block
from embedkit.errors import InputError
from embedkit.shard_paths import Shard


@dataclass(frozen=True)
class Dataset:
    """Embeddings with optional labels and row ids.

    ``labels`` are int64 codes (``label_names[labels]`` gives the original values);
    ``embeddings`` may be a read-only memory map.
    """

    embeddings: np.ndarray
    source: str
    labels: np.ndarray | None = None
    label_names: np.ndarray | None = None
    label_source: str | None = None
    ids: np.ndarray | None = None
    labels_searched: tuple[str, ...] = field(default_factory=tuple)
    #: Which rows came from which file, in reading order (empty for in-memory data).
    shards: tuple[Shard, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def require_labels(self, purpose: str) -> np.ndarray:
        """The label codes, or an :class:`InputError` saying where labels were looked for."""
        if self.labels is None:
            where = ", ".join(self.labels_searched) if self.labels_searched else "nowhere"
            raise InputError(
                f"{purpose} needs labels, and none were found for {self.source} "
                f"(looked in: {where}); pass --labels FILE"
            )
        return self.labels


def encode_labels(values: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Factorise labels into int64 codes.

    Returns ``(codes, names)`` with ``names[codes] == values``. Integer and string
    labels are accepted; floats only when every value is integral.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise InputError(f"{source}: labels must be 1-D; found shape {tuple(values.shape)}")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise InputError(f"{source}: float labels must be whole numbers (class ids)")
        # Whole floats beyond int64 (1e300, 2e300) stay floats: a cast would merge them.
        if np.all(np.abs(values) < 2.0**63):
            values = values.astype(np.int64)
    elif values.dtype.kind == "b":
        values = values.astype(np.int64)
    elif values.dtype.kind == "O":
        if any(v is None for v in values):
            raise InputError(f"{source}: labels contain missing values")
        kinds = {type(v).__name__ for v in values if not isinstance(v, (str, int, np.integer, np.str_))}
        if kinds:
            raise InputError(
                f"{source}: labels must be integers or strings; found {', '.join(sorted(kinds))} values"
            )
        values = values.astype(str)
    elif values.dtype.kind not in "iuUS":
        raise InputError(f"{source}: labels must be integers or strings; found {values.dtype}")
    names, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), names


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


def nonfinite_masks(embeddings: np.ndarray, *, budget_mib: float = SCAN_BUDGET_MIB) -> tuple[np.ndarray, np.ndarray]:
    """``(has_nan, has_inf)`` row masks, scanned in blocks (memory maps are never loaded whole)."""
    n = embeddings.shape[0]
    has_nan = np.zeros(n, dtype=bool)
    has_inf = np.zeros(n, dtype=bool)
    step = rows_per_block(max(1, embeddings.shape[1]) * embeddings.dtype.itemsize, budget_mib)
    for start, stop, block in row_blocks(embeddings, step):
        has_nan[start:stop] = np.isnan(block).any(axis=1)
        has_inf[start:stop] = np.isinf(block).any(axis=1)
    return has_nan, has_inf
