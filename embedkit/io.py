"""Reading embeddings, labels and pair/triplet tables from NPY, NPZ, Parquet, Arrow IPC, text or stdin.

Formats are told by their magic bytes, not by the file name: NPY (``\\x93NUMPY``),
NPZ (a zip archive), Parquet (``PAR1``) and Arrow IPC (``ARROW1``, or ``\\xff\\xff\\xff\\xff``
for the stream format). NPY files are memory-mapped; Parquet is read one row group at a
time, straight from Arrow buffers into one preallocated matrix. A folder or a glob of
such files is one dataset (:mod:`embedkit.shards`).

Labels are found, in order of precedence, from ``labels_path`` (``--labels``), the
Parquet label column (``label_column``, default ``label`` when present), the NPZ
member ``labels``, then the *sidecar* files next to the embeddings: for ``emb.npy``
(or ``emb.parquet``, ``emb.npz``) the first of ``emb.labels.npy``, ``emb.labels.txt``
and ``emb.labels.csv`` that exists.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from embedkit.arrays import encode_labels, validate_embeddings
from embedkit.errors import InputError
from embedkit.shards import (
    LABEL_SIDECARS,
    FileReaders,
    Shard,
    is_stream_path,
    open_pieces,
    read_pieces,
    read_stream_path,
    sidecar_candidates,
    stream_piece,
)

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
STDIN = "-"
SIDECAR_SUFFIXES = LABEL_SIDECARS


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


def _read_head(path: str, size: int = 8) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_dataset(
    path: str | None,
    *,
    column: str | None = None,
    label_column: str | None = None,
    labels_path: str | None = None,
    id_column: str | None = None,
    stdin: BinaryIO | None = None,
    require_finite: bool = True,
) -> Dataset:
    """Load embeddings (and labels, ids) from ``path``, or stdin when it is ``None`` or ``-``.

    ``path`` may be one file, a folder or a glob pattern of shards (see
    :mod:`embedkit.shards`): rows are numbered in the sorted order of the shards, and
    ``Dataset.shards`` says which rows came from which file.
    ``require_finite=False`` accepts NaN/Inf rows (for commands that report them)."""
    from_stdin = path is None or path == STDIN
    source = "stdin" if from_stdin else str(path)
    if from_stdin:
        pieces = [stream_piece(read_stdin_bytes(stdin, expected="an NPY, NPZ, Parquet or Arrow stream"), "stdin")]
    else:
        pieces = open_pieces(str(path), exclude=(labels_path,))
    read = read_pieces(pieces, source, column=column, label_column=label_column, id_column=id_column,
                       want_labels=labels_path is None,
                       readers=FileReaders(npy=_load_npy, npz=_load_npz, labels=load_labels))
    embeddings = read.embeddings
    validate_embeddings(embeddings, source, require_finite=require_finite)

    labels_raw, label_source = read.labels, read.label_source
    searched = list(read.searched)
    if labels_path is not None:
        labels_raw = load_labels(labels_path, column=label_column, stdin_used=from_stdin)
        label_source = labels_path
    elif labels_raw is None and not from_stdin and len(read.shards) > 1 and os.path.isdir(str(path)):
        # A folder's own sidecar: shards/ -> shards.labels.npy beside it.
        for candidate in sidecar_candidates(str(path).rstrip("/" + os.sep)):
            searched.append(candidate)
            if os.path.exists(candidate):
                labels_raw = load_labels(candidate)
                label_source = candidate
                break

    codes = names = None
    if labels_raw is not None:
        if len(labels_raw) != embeddings.shape[0]:
            raise InputError(
                f"{label_source}: labels has {len(labels_raw)} rows but embeddings has "
                f"{embeddings.shape[0]} ({source})"
            )
        codes, names = encode_labels(labels_raw, str(label_source))
    ids = read.ids
    if ids is not None and len(ids) != embeddings.shape[0]:
        raise InputError(f"{source}: id column has {len(ids)} rows but embeddings has {embeddings.shape[0]}")
    return Dataset(
        embeddings=embeddings,
        source=source,
        labels=codes,
        label_names=names,
        label_source=label_source,
        ids=ids,
        labels_searched=tuple(searched),
        shards=read.shards,
    )


def _load_npy(source_or_bytes: str | bytes, source: str, expected: str = "a float matrix") -> np.ndarray:
    try:
        if isinstance(source_or_bytes, bytes):
            array = np.load(io.BytesIO(source_or_bytes), allow_pickle=False)
        else:
            array = np.load(source_or_bytes, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "allow_pickle" in text or "Object arrays" in text or "Python objects" in text:
            raise InputError(f"{source}: holds a pickled object array; expected {expected}") from None
        raise InputError(f"{source}: not a valid NPY file ({text.splitlines()[0]})") from None
    except Exception as exc:  # numpy's header parser fails in many ways on untrusted bytes
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: not a valid NPY file ({detail})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{source}: not a single NPY array")
    return array


def _load_npz(source_or_bytes: str | bytes, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    target = io.BytesIO(source_or_bytes) if isinstance(source_or_bytes, bytes) else source_or_bytes
    try:
        with np.load(target, allow_pickle=False) as archive:
            if "embeddings" not in archive.files:
                raise InputError(
                    f"{source}: NPZ archive has no 'embeddings' array (has: {', '.join(archive.files) or 'nothing'})"
                )
            embeddings = archive["embeddings"]
            labels = archive["labels"] if "labels" in archive.files else None
    except InputError:
        raise
    except Exception as exc:  # zipfile/np errors come in many types; all mean "unreadable"
        raise InputError(f"{source}: not a readable NPZ archive ({exc})") from None
    return embeddings, labels


def _is_vector_type(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_fixed_size_list(dtype) or pa.types.is_list(dtype) or pa.types.is_large_list(dtype)
    )


class ParquetSource:
    """A Parquet file of scalar columns (labels), read one row group at a time.

    Embeddings are read by :mod:`embedkit.shards`, which also checks row counts against the footer."""

    def __init__(self, target: str | pa.BufferReader, source: str) -> None:
        self.source = source
        try:
            self.file = pq.ParquetFile(target)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{source}: not a readable Parquet file ({exc})") from None
        self.schema = self.file.schema_arrow
        self.column_names = list(self.schema.names)

    def _field(self, name: str) -> pa.Field:
        if name not in self.column_names:
            raise InputError(
                f"{self.source}: no column '{name}' (columns: {', '.join(self.column_names)})"
            )
        return self.schema.field(name)

    def column(self, name: str) -> np.ndarray:
        """A scalar column (labels, ids) as a numpy array."""
        field_ = self._field(name)
        if _is_vector_type(field_.type):
            raise InputError(f"{self.source}: column '{name}' holds lists, expected one value per row")
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


def load_labels(path: str, *, column: str | None = None, stdin_used: bool = False) -> np.ndarray:
    """Labels from .npy, Parquet (``column``, ``label`` or the only column) or text (one per line).

    Text and CSV files may start with a header line ``label``. Values that all parse as
    integers become int64; anything else stays a string.
    """
    if path == STDIN or is_stream_path(path):  # stdin, a FIFO, <(...): read once, never reopened
        if path == STDIN and stdin_used:
            raise InputError("--labels -: stdin already carries the embeddings")
        src = "stdin" if path == STDIN else path
        data = (read_stdin_bytes(expected="labels: NPY, Parquet or one label per line") if path == STDIN
                else read_stream_path(path))
        fmt = sniff_format(data[:8])
        if fmt == "npy":
            return _labels_npy(_load_npy(data, src, LABELS_EXPECTED), src)
        if fmt == "parquet":
            return _labels_parquet(ParquetSource(pa.BufferReader(data), src), column)
        return _labels_text(data.decode("utf-8", errors="replace"), src)
    fmt = sniff_format(_read_head(path))
    if fmt == "npy":
        return _labels_npy(_load_npy(path, path, LABELS_EXPECTED), path)
    if fmt == "parquet":
        return _labels_parquet(ParquetSource(path, path), column)
    if fmt == "npz":
        raise InputError(f"{path}: labels as NPZ are not supported; use .npy, .txt, .csv or Parquet")
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels file is neither NPY, Parquet nor UTF-8 text") from None
    return _labels_text(text, path)


def _labels_npy(array: np.ndarray, source: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{source}: labels must be 1-D; found shape {tuple(array.shape)}")
    return array


def _labels_parquet(parquet: ParquetSource, column: str | None) -> np.ndarray:
    if column is None:
        scalar = [n for n in parquet.column_names if not _is_vector_type(parquet.schema.field(n).type)]
        column = "label" if "label" in scalar else (scalar[0] if len(scalar) == 1 else None)
        if column is None:
            raise InputError(f"{parquet.source}: cannot tell the label column; pass --label-column")
    return parquet.column(column)


def _labels_text(text: str, source: str) -> np.ndarray:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if lines and lines[0].lower() in ("label", "labels", '"label"'):
        lines = lines[1:]
    if not lines:
        raise InputError(f"{source}: labels file is empty")
    if any(not line for line in lines):
        row = lines.index("")
        raise InputError(f"{source}: line {row + 1} is empty; expected one label per line")
    if any("," in line for line in lines):
        raise InputError(f"{source}: expected one label per line, found commas")
    array = np.array(lines)
    try:
        return array.astype(np.int64)
    except ValueError:
        return array


def read_table(path: str, required: tuple[str, ...], *, stdin: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """Read a pairs/triplets table (Parquet, CSV or JSON lines) with integer ``required`` columns."""
    source = "stdin" if path == STDIN else path
    if path == STDIN or is_stream_path(path):  # stdin, a FIFO, <(...): read once, never reopened
        data = (read_stdin_bytes(stdin, expected="a CSV, JSON-lines or Parquet table") if path == STDIN
                else read_stream_path(path))
        if sniff_format(data[:8]) in ("npy", "npz"):
            raise InputError(f"{source}: is an NPY/NPZ stream; expected a CSV, JSON-lines or Parquet table")
        fmt = "parquet" if data.startswith(PARQUET_MAGIC) else ("jsonl" if data.lstrip()[:1] == b"{" else "csv")
        target: object = pa.BufferReader(data)
    else:
        head = _read_head(path)
        suffix = Path(path).suffix.lower()
        fmt = "parquet" if head.startswith(PARQUET_MAGIC) else ("jsonl" if suffix in (".jsonl", ".ndjson", ".json") else "csv")
        if sniff_format(head) in ("npy", "npz"):
            raise InputError(f"{source}: is an NPY/NPZ file; expected a CSV, JSON-lines or Parquet table")
        target = path
    try:
        if fmt == "parquet":
            table = pq.read_table(target, columns=None)
        elif fmt == "jsonl":
            table = pajson.read_json(target)
        else:
            table = pacsv.read_csv(target)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: not a readable {fmt.upper()} table ({first})") from None
    if table.num_rows == 0:
        raise InputError(f"{source}: table has no rows")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)} (has: {', '.join(table.column_names)})"
        )
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        if name in required:
            if col.null_count:
                raise InputError(f"{source}: column '{name}' has empty values")
            if not (pa.types.is_integer(col.type)):
                raise InputError(f"{source}: column '{name}' must hold integers; found {col.type}")
            out[name] = col.to_numpy().astype(np.int64)
        elif pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            out[name] = col.to_numpy(zero_copy_only=False)
        elif pa.types.is_boolean(col.type) and not col.null_count:
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.int64)  # y = true/false
    return out
