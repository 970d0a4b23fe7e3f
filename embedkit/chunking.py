"""Memory-bounded blocking: how many rows fit a MiB budget, the blocks themselves, and
streaming a (memory-mapped) matrix block by block."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from embedkit.choices import DEFAULT_BUDGET_MIB
from embedkit.errors import InputError, OptionError

__all__ = ["DEFAULT_BUDGET_MIB", "blocks", "row_blocks", "rows_per_block"]



def rows_per_block(bytes_per_row: int, budget_mib: float = DEFAULT_BUDGET_MIB) -> int:
    """Rows whose working set fits ``budget_mib`` MiB, at least one.

    >>> rows_per_block(1024, budget_mib=1.0)
    1024
    >>> rows_per_block(10**9, budget_mib=1.0)
    1
    """
    if not (isinstance(budget_mib, (int, float)) and math.isfinite(budget_mib) and budget_mib > 0):
        raise OptionError(f"--budget-mib must be > 0 and finite; got {budget_mib}")
    budget = int(budget_mib * 1024 * 1024)
    return max(1, budget // max(1, bytes_per_row))


def blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """Half-open ``(start, stop)`` ranges covering ``range(n)`` in steps of ``size``.

    >>> list(blocks(5, 2))
    [(0, 2), (2, 4), (4, 5)]
    """
    size = max(1, size)
    for start in range(0, n, size):
        yield start, min(n, start + size)


def row_blocks(embeddings: np.ndarray, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Blocks of rows. A C-ordered memory map is read with plain file reads into one reused
    buffer, so scanning a file far larger than memory leaves no mapped pages resident."""
    rows, dim = embeddings.shape
    path = getattr(embeddings, "filename", None)
    if isinstance(embeddings, np.memmap) and path and embeddings.flags.c_contiguous:
        with open(path, "rb") as handle:
            handle.seek(int(embeddings.offset))
            for start, stop in blocks(rows, step):
                block = np.fromfile(handle, dtype=embeddings.dtype, count=(stop - start) * dim)
                if block.size != (stop - start) * dim:
                    raise InputError(f"{path}: file ends inside row {start + block.size // dim} (truncated)")
                yield start, stop, block.reshape(stop - start, dim)
        return
    for start, stop in blocks(rows, step):
        yield start, stop, np.asarray(embeddings[start:stop])
