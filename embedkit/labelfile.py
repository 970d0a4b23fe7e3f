"""Reading a label file: NPY, Parquet (one scalar column) or UTF-8 text, one label per line."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pyarrow is imported where it is used: an NPY-only command never loads it
    import pyarrow as pa

from embedkit.columnar import is_vector_type, refuse_duplicate_names, refuse_non_scalar
from embedkit.errors import InputError
from embedkit.formats import STDIN, read_head, read_stdin_bytes, sniff_format
from embedkit.npyfile import load_npy
from embedkit.shard_paths import is_stream_path, read_stream_path


class ParquetSource:
    """A Parquet file of scalar columns (labels), read one row group at a time.

    Embeddings are read by :mod:`embedkit.shards`, which also checks row counts against the footer."""

    def __init__(self, target: str | pa.BufferReader, source: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.source = source
        try:
            self.file = pq.ParquetFile(target)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{source}: not a readable Parquet file ({exc})") from None
        self.schema = self.file.schema_arrow
        self.column_names = list(self.schema.names)
        refuse_duplicate_names(self.column_names, source)

    def _field(self, name: str) -> pa.Field:
        if name not in self.column_names:
            raise InputError(
                f"{self.source}: no column '{name}' (columns: {', '.join(self.column_names)})"
            )
        return self.schema.field(name)

    def column(self, name: str) -> np.ndarray:
        """A scalar column (labels, ids) as a numpy array."""
        field_ = self._field(name)
        if is_vector_type(field_.type):
            raise InputError(f"{self.source}: column '{name}' holds lists, expected one value per row")
        refuse_non_scalar(field_.type, f"{self.source}: column '{name}'")
        parts = []
        done = 0
        for group in range(self.file.num_row_groups):
            chunk = self.file.read_row_group(group, columns=[name]).column(0)
            if chunk.null_count:
                first = done + int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError(f"{self.source}: column '{name}' has null values (first at row {first}); "
                                 "expected a value in every row")
            done += len(chunk)
            parts.append(chunk.to_numpy())
        values = np.concatenate(parts) if parts else np.empty(0)
        return values.astype(str) if values.dtype == object else values


LABELS_EXPECTED = "a 1-D array of integer or string labels"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LABEL_HEADERS = ("label", "labels")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def load_labels(path: str, *, column: str | None = None, stdin_used: bool = False) -> np.ndarray:
    """Labels from .npy, Parquet (``column``, ``label`` or the only column) or text (one per line).

    Text is UTF-8 (a byte-order mark is dropped; anything else is refused, from a path
    and from stdin alike), read as CSV: quoted values are unquoted, LF, CRLF and CR line
    ends are accepted, a first line ``label`` is a header. Values that all parse as
    integers become int64; integers beyond int64 stay strings (in canonical decimal
    form, so distinct numbers stay distinct); anything else stays a string.
    """
    if path == STDIN or is_stream_path(path):  # stdin, a FIFO, <(...): read once, never reopened
        if path == STDIN and stdin_used:
            raise InputError("--labels -: stdin already carries the embeddings")
        src = "stdin" if path == STDIN else path
        data = (read_stdin_bytes(expected="labels: NPY, Parquet or one label per line") if path == STDIN
                else read_stream_path(path))
        fmt = sniff_format(data[:8])
        if fmt == "npy":
            return _labels_npy(load_npy(data, src, LABELS_EXPECTED), src)
        if fmt == "parquet":
            import pyarrow as pa

            return _labels_parquet(ParquetSource(pa.BufferReader(data), src), column)
        if fmt == "npz":
            raise InputError(f"{src}: labels as NPZ are not supported; use .npy, .txt, .csv or Parquet")
        return _labels_text(_decode_labels_text(data, src), src)
    fmt = sniff_format(read_head(path))
    if fmt == "npy":
        return _labels_npy(load_npy(path, path, LABELS_EXPECTED), path)
    if fmt == "parquet":
        return _labels_parquet(ParquetSource(path, path), column)
    if fmt == "npz":
        raise InputError(f"{path}: labels as NPZ are not supported; use .npy, .txt, .csv or Parquet")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _labels_text(_decode_labels_text(data, path), path)


def _decode_labels_text(data: bytes, source: str) -> str:
    """UTF-8 text without its byte-order mark; other encodings are refused with the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: labels file is neither NPY, Parquet nor UTF-8 text "
            f"(byte {exc.start} is 0x{data[exc.start]:02x}); convert it to UTF-8"
        ) from None


def _labels_npy(array: np.ndarray, source: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{source}: labels must be 1-D; found shape {tuple(array.shape)}")
    return array


def _labels_parquet(parquet: ParquetSource, column: str | None) -> np.ndarray:
    if column is None:
        scalar = [n for n in parquet.column_names if not is_vector_type(parquet.schema.field(n).type)]
        column = "label" if "label" in scalar else (scalar[0] if len(scalar) == 1 else None)
        if column is None:
            raise InputError(f"{parquet.source}: cannot tell the label column; pass --label-column")
    return parquet.column(column)


def _labels_text(text: str, source: str) -> np.ndarray:
    """One label per line (CSV quoting allowed), with an optional header line ``label``."""
    rows = [[value.strip() for value in row] for row in _csv_rows(text, source)]
    while rows and not any(rows[-1]):
        rows.pop()
    first_line = 1
    if rows and len(rows[0]) == 1 and rows[0][0].lower() in LABEL_HEADERS:
        rows, first_line = rows[1:], 2
    if not rows:
        raise InputError(f"{source}: labels file is empty")
    values: list[str] = []
    for number, row in enumerate(rows, start=first_line):
        if len(row) > 1:
            raise InputError(f"{source}: line {number} has {len(row)} values; expected one label per line, found commas")
        if not row[0]:
            raise InputError(f"{source}: line {number} is empty; expected one label per line")
        values.append(row[0])
    return _typed_labels(values)


def _csv_rows(text: str, source: str) -> list[list[str]]:
    """CSV rows of ``text`` (quotes removed; LF, CRLF or CR line ends)."""
    import csv

    try:
        return [row if row else [""] for row in csv.reader(io.StringIO(text, newline=""), strict=True)]
    except csv.Error as exc:
        raise InputError(f"{source}: not a readable labels file ({exc})") from None


def _typed_labels(values: list[str]) -> np.ndarray:
    """int64 when every value is an integer that fits; integers beyond int64 as canonical
    decimal strings (``+7`` and ``007`` are the class ``7``); otherwise the strings as given."""
    if not all(_INTEGER_TEXT.fullmatch(value) for value in values):
        return np.array(values, dtype=str)
    numbers = [int(value) for value in values]
    if all(INT64_MIN <= n <= INT64_MAX for n in numbers):
        return np.array(numbers, dtype=np.int64)
    return np.array([str(n) for n in numbers], dtype=str)
