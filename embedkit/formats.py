"""Telling an input's format by its first bytes, and reading stdin whole.

Formats are told by their magic bytes, not by the file name: NPY (``\\x93NUMPY``), NPZ (a
zip archive), Parquet (``PAR1``) and Arrow IPC (``ARROW1``, or ``\\xff\\xff\\xff\\xff`` for
the stream format).
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from embedkit.errors import InputError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
#: The path that means standard input.
STDIN = "-"


def read_stdin_bytes(stream: BinaryIO | None = None, *, expected: str = "an NPY, NPZ or Parquet stream") -> bytes:
    """All of stdin (or ``stream``) as bytes; an empty stream is an error."""
    data = (stream if stream is not None else sys.stdin.buffer).read()
    if not data:
        raise InputError(f"stdin: no data (expected {expected}; give a file path, or pipe the data in)")
    return bytes(data)


def sniff_format(head: bytes) -> str | None:
    """``"npy"``, ``"npz"``, ``"parquet"`` or ``"arrow"`` (IPC file or stream) from the first bytes, else ``None``."""
    if head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        return "arrow"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    return None


def read_head(path: str, size: int = 8) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
