"""Loading embeddings that may hold NaN or Inf rows, for ``inspect`` and ``check``.

:func:`embedkit.io.load_dataset` refuses non-finite embeddings (exit 2: the tool cannot
compute a loss on them). ``inspect`` must *report* them and ``check --require
nan_rows==0`` must *fail* on them (exit 1), so this module reads the raw matrix, counts
the non-finite rows in blocks, and only then builds the :class:`Dataset`: through
``load_dataset`` when every row is finite, else from the raw matrix and the same label
sources ``load_dataset`` searches (``--labels``, the Parquet label column, the NPZ
``labels`` member, the sidecar files).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from embedkit import io as eio
from embedkit.arrays import FLOAT_DTYPES, encode_labels
from embedkit.chunking import blocks, rows_per_block
from embedkit.errors import InputError


@dataclass(frozen=True)
class LoadedEmbeddings:
    """A dataset plus its non-finite row counts; ``finite`` is the row mask (all True
    when ``nonfinite_rows == 0``). With non-finite rows, ``dataset.embeddings`` holds them."""

    dataset: eio.Dataset
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
    for start, stop in blocks(n, step):
        block = np.asarray(embeddings[start:stop])
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
    from_stdin = path is None or path == eio.STDIN
    source = "stdin" if from_stdin else str(path)
    payload = eio.read_stdin_bytes() if from_stdin else None
    raw, npz_labels, parquet = _raw_embeddings(path, payload, source, column)
    floating = raw.dtype.kind == "f" and raw.ndim == 2
    has_nan, has_inf = nonfinite_masks(raw) if floating else (np.zeros(0, bool), np.zeros(0, bool))
    if not floating or not (has_nan.any() or has_inf.any()):
        dataset = eio.load_dataset(
            path if payload is None else eio.STDIN, column=column, label_column=label_column,
            labels_path=labels_path, id_column=id_column,
            stdin=io.BytesIO(payload) if payload is not None else None,
        )
        n = dataset.rows
        return LoadedEmbeddings(dataset, 0, 0, np.ones(n, dtype=bool))
    finite = ~(has_nan | has_inf)
    if raw.dtype not in FLOAT_DTYPES:
        raise InputError(f"{source}: embeddings must be float16, float32 or float64; found {raw.dtype}")
    labels_raw, label_source = _raw_labels(path, source, npz_labels, parquet, labels_path, label_column, from_stdin)
    codes = names = None
    if labels_raw is not None:
        if len(labels_raw) != raw.shape[0]:
            raise InputError(f"{label_source}: labels has {len(labels_raw)} rows but embeddings has {raw.shape[0]}")
        codes, names = encode_labels(labels_raw, str(label_source))
    ids = parquet.column(id_column) if (parquet is not None and id_column is not None) else None
    dataset = eio.Dataset(embeddings=raw, source=source, labels=codes, label_names=names,
                          label_source=label_source, ids=ids)
    return LoadedEmbeddings(dataset, int(has_nan.sum()), int((has_inf & ~has_nan).sum()), finite)


def _raw_embeddings(
    path: str | None, payload: bytes | None, source: str, column: str | None
) -> tuple[np.ndarray, np.ndarray | None, eio.ParquetSource | None]:
    head = payload[:8] if payload is not None else eio._read_head(str(path))
    fmt = eio.sniff_format(head)
    target = payload if payload is not None else str(path)
    if fmt == "npy":
        return eio._load_npy(target, source), None, None
    if fmt == "npz":
        embeddings, labels = eio._load_npz(target, source)
        return embeddings, labels, None
    if fmt == "parquet":
        parquet = eio.ParquetSource(pa.BufferReader(payload) if payload is not None else str(path), source)
        return parquet.embeddings(column), None, parquet
    raise InputError(f"{source}: not an NPY, NPZ or Parquet file (starts with {head[:8]!r})")


def _raw_labels(
    path: str | None, source: str, npz_labels: np.ndarray | None, parquet: eio.ParquetSource | None,
    labels_path: str | None, label_column: str | None, from_stdin: bool,
) -> tuple[np.ndarray | None, str | None]:
    if labels_path is not None:
        return eio.load_labels(labels_path, column=label_column, stdin_used=from_stdin), labels_path
    if npz_labels is not None:
        return npz_labels, f"{source}[labels]"
    if parquet is not None:
        want = label_column or ("label" if "label" in parquet.column_names else None)
        if want is not None:
            return parquet.column(want), f"{source} column '{want}'"
    if not from_stdin:
        for candidate in eio.sidecar_candidates(str(path)):
            if os.path.exists(candidate):
                return eio.load_labels(candidate), candidate
    return None, None
