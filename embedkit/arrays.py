"""Validation and dtype handling of embedding matrices and label vectors."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from embedkit.choices import SCAN_BUDGET_MIB
from embedkit.chunking import row_blocks, rows_per_block
from embedkit.errors import InputError

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]
BoolArray = npt.NDArray[np.bool_]

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic runs in: float64 stays float64, float16/32 become float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def validate_embeddings(embeddings: np.ndarray, source: str, *, require_finite: bool = True) -> np.ndarray:
    """Check an embedding matrix is 2-D, non-empty, floating point and (unless
    ``require_finite`` is False) finite.

    Memory-mapped input is scanned in blocks, never loaded whole. Returns the array
    unchanged.
    """
    if embeddings.dtype == object:
        raise InputError(f"{source}: embeddings are an object array; expected a float matrix")
    if embeddings.ndim != 2:
        raise InputError(
            f"{source}: embeddings must be a 2-D (rows, dim) matrix; found {embeddings.ndim}-D "
            f"with shape {tuple(embeddings.shape)}"
        )
    rows, dim = embeddings.shape
    if rows == 0 or dim == 0:
        raise InputError(f"{source}: embeddings are empty (shape {rows}x{dim})")
    if embeddings.dtype not in FLOAT_DTYPES:
        raise InputError(
            f"{source}: embeddings must be float16, float32 or float64; found {embeddings.dtype}"
        )
    if not require_finite:
        return embeddings
    step = rows_per_block(dim * embeddings.dtype.itemsize, budget_mib=SCAN_BUDGET_MIB)
    for start, stop, block in row_blocks(embeddings, step):
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite)[0])
            count = int((~finite).sum())
            raise InputError(
                f"{source}: row {bad} has NaN or Inf values ({count} such rows in rows "
                f"{start}..{stop - 1}); embeddings must be finite"
            )
    return embeddings


def mapped_file_guard(array: np.ndarray) -> Callable[[], None]:
    """For a memory-mapped ``array``, a check that raises :class:`InputError` when its file
    has become shorter than the mapping; for any other array, a no-op.

    Reading a mapped page past the end of a truncated file raises SIGBUS, which kills the
    process (Python cannot recover from it safely: the handler would return into the
    faulting copy). Calling the guard between blocks turns a file truncated by another
    process into one error line; a truncation in the middle of a block can still kill.
    """
    mapped: object = array
    while isinstance(mapped, np.ndarray) and not (isinstance(mapped, np.memmap) and mapped.filename):
        mapped = mapped.base  # a view (np.asarray, slices) of a memory map keeps it as its base
    path = getattr(mapped, "filename", None)
    mapping = getattr(mapped, "_mmap", None)
    if not isinstance(mapped, np.memmap) or not path or mapping is None:
        return _no_check
    offset = int(getattr(mapped, "offset", 0))
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    needed = start + len(mapping)

    def check() -> None:
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise InputError(f"{path}: cannot be read any more ({exc.strerror or exc}); "
                             "it changed while embedkit was reading it") from None
        if size < needed:
            raise InputError(f"{path}: the file shrank to {size:,} bytes while it was being read "
                             f"(it needs {needed:,}); another process changed it")

    return check


def _no_check() -> None:
    return None


def as_work_array(embeddings: np.ndarray) -> np.ndarray:
    """A C-contiguous array in the work dtype; no copy when it already is one."""
    return np.ascontiguousarray(embeddings, dtype=work_dtype(embeddings.dtype))


def l2_normalized(embeddings: np.ndarray, *, dtype: npt.DTypeLike = None) -> np.ndarray:
    """Rows (the last axis) scaled to unit L2 norm, as a new C-contiguous array of ``dtype``
    (default: the work dtype); zero rows stay zero.

    >>> l2_normalized(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    out = np.array(embeddings, dtype=dtype or work_dtype(embeddings.dtype), order="C", copy=True)
    norms = np.linalg.norm(out, axis=-1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
