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
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pyarrow is imported where it is used: an NPY-only command never loads it
    import pyarrow as pa

from embedkit.arrays import encode_labels, validate_embeddings
from embedkit.errors import InputError
from embedkit.shards import (
    LABEL_SIDECARS,
    FileReaders,
    Shard,
    is_stream_path,
    is_vector_type,
    open_pieces,
    read_pieces,
    read_stream_path,
    sidecar_candidates,
    stream_piece,
)
from embedkit.shards import (
    refuse_duplicate_names as _refuse_duplicate_names,
)
from embedkit.shards import (
    refuse_non_scalar as _refuse_non_scalar,
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
    """An NPY array: memory-mapped from a path, in native byte order and C order.

    The header's shape is checked against the file size first (a truncated file is an
    :class:`InputError` naming it). Big-endian or Fortran-ordered data is converted in
    blocks (:func:`native_c_order`)."""
    if not isinstance(source_or_bytes, bytes):
        _check_npy_size(source_or_bytes, source)
    try:
        if isinstance(source_or_bytes, bytes):
            array = np.load(io.BytesIO(source_or_bytes), allow_pickle=False)
        else:
            array = np.load(source_or_bytes, mmap_mode="r", allow_pickle=False)
    except InputError:
        raise
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
    from embedkit.mapped import path_backed  # a file mapped as it is travels to workers by path

    return path_backed(native_c_order(array))


def _check_npy_size(path: str, source: str) -> None:
    """Refuse an NPY file whose header promises more data than the file holds."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = header(handle)
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except Exception:
        return  # np.load words the header problem
    if dtype.hasobject:
        return
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - offset < needed:
        shown = "x".join(str(n) for n in shape) or "scalar"
        raise InputError(
            f"{source}: not a valid NPY file: its header says {shown} {dtype.name} ({needed:,} bytes of data) "
            f"but the file holds {max(size - offset, 0):,} bytes after the header (truncated?)"
        )


def native_c_order(array: np.ndarray, *, budget_mib: float = 64.0) -> np.ndarray:
    """``array`` in native byte order and C order; unchanged when it already is.

    A memory-mapped array is converted block by block into an unnamed temporary file
    that is memory-mapped in turn, so a big-endian or Fortran-ordered file costs disk,
    not memory; an in-memory array is converted in memory."""
    native = array.dtype.newbyteorder("=")
    if (native == array.dtype and (array.ndim < 2 or array.flags.c_contiguous)) or array.ndim > 2 \
            or array.dtype.hasobject or array.dtype.fields is not None:
        return array  # already native, or a shape/dtype the validation refuses anyway
    if not isinstance(array, np.memmap) or array.ndim != 2:
        return np.ascontiguousarray(array, dtype=native)
    import tempfile

    rows, dim = array.shape
    handle = tempfile.TemporaryFile(prefix="embedkit-native-")
    with handle:
        out = np.memmap(handle, dtype=native, mode="w+", shape=(rows, dim))
    fortran = not array.flags.c_contiguous
    count = dim if fortran else rows
    other = rows if fortran else dim
    step = max(1, int(budget_mib * 2**20) // max(1, other * native.itemsize))
    for start in range(0, count, step):
        stop = min(count, start + step)
        if fortran:
            out[:, start:stop] = array[:, start:stop]
        else:
            out[start:stop] = array[start:stop]
    out.flush()
    return out


def _load_npz(source_or_bytes: str | bytes, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    target = io.BytesIO(source_or_bytes) if isinstance(source_or_bytes, bytes) else source_or_bytes
    try:
        with np.load(target, allow_pickle=False) as archive:
            if "embeddings" not in archive.files:
                raise InputError(
                    f"{source}: NPZ archive has no 'embeddings' array (has: {', '.join(archive.files) or 'nothing'})"
                )
            embeddings = _npz_member(archive, "embeddings", source)
            labels = _npz_member(archive, "labels", source) if "labels" in archive.files else None
    except InputError:
        raise
    except Exception as exc:  # zipfile/np errors come in many types; all mean "unreadable"
        raise InputError(f"{source}: not a readable NPZ archive ({exc})") from None
    return native_c_order(embeddings), labels if labels is None else native_c_order(labels)


def _npz_member(archive: "np.lib.npyio.NpzFile", name: str, source: str) -> np.ndarray:
    """One member of an NPZ archive, which must itself be an NPY array."""
    import zipfile

    member_name = f"{name}.npy" if f"{name}.npy" in archive.zip.namelist() else name
    with archive.zip.open(member_name) as member:
        head = member.read(len(NPY_MAGIC))
    if head != NPY_MAGIC:
        raise InputError(f"{source}: NPZ member '{name}' is not an NPY array (starts with {head!r})")
    try:
        value = archive[name]
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: NPZ member '{name}' is not a valid NPY array ({detail})") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{source}: NPZ member '{name}' is not an array")
    return value


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
        _refuse_duplicate_names(self.column_names, source)

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
        _refuse_non_scalar(field_.type, f"{self.source}: column '{name}'")
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
            return _labels_npy(_load_npy(data, src, LABELS_EXPECTED), src)
        if fmt == "parquet":
            import pyarrow as pa

            return _labels_parquet(ParquetSource(pa.BufferReader(data), src), column)
        if fmt == "npz":
            raise InputError(f"{src}: labels as NPZ are not supported; use .npy, .txt, .csv or Parquet")
        return _labels_text(_decode_labels_text(data, src), src)
    fmt = sniff_format(_read_head(path))
    if fmt == "npy":
        return _labels_npy(_load_npy(path, path, LABELS_EXPECTED), path)
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


def read_table(path: str, required: tuple[str, ...], *, stdin: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """Read a pairs/triplets table (Parquet, CSV or JSON lines) with integer ``required`` columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

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
            parquet = pq.ParquetFile(target)
            _refuse_duplicate_names(parquet.schema_arrow.names, source)
            table = parquet.read()
        elif fmt == "jsonl":
            table = pajson.read_json(target)
        else:
            table = pacsv.read_csv(target)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: not a readable {fmt.upper()} table ({first})") from None
    _refuse_duplicate_names(table.column_names, source)
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
            if pa.types.is_floating(col.type) and len(col):
                values = col.to_numpy(zero_copy_only=False)
                big = values[np.isfinite(values) & (np.abs(values) >= 2.0**63)]
                if len(big) and np.all(values == np.round(values)):  # integer text wider than int64
                    raise InputError(f"{source}: column '{name}' holds an integer beyond int64 (about {big[0]:.3g}); expected row numbers")
            if not (pa.types.is_integer(col.type)):
                raise InputError(f"{source}: column '{name}' must hold integers; found {col.type}")
            if pa.types.is_unsigned_integer(col.type) and len(col) and pc.max(col).as_py() > INT64_MAX:
                raise InputError(f"{source}: column '{name}' holds {pc.max(col).as_py()}, beyond any row number")
            out[name] = col.to_numpy().astype(np.int64)
        elif pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            out[name] = col.to_numpy(zero_copy_only=False)
        elif pa.types.is_boolean(col.type) and not col.null_count:
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.int64)  # y = true/false
    return out
