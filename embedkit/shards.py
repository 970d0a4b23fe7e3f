"""One dataset from many files: folders, globs, NPY shard sets and Arrow IPC (file and stream).

A path names a *shard set* when it is a folder or a glob pattern (``'exports/part-*.parquet'``,
quoted so the shell leaves it alone); otherwise it is one file, and one file is a shard set
of one. The shards are read in the sorted order of their paths (relative to the folder, or
as the glob matched them), and row ``r`` of the dataset is row ``r - shard.start`` of the
shard whose ``[start, stop)`` holds it: :attr:`embedkit.dataset.Dataset.shards` keeps that map.

In a folder, hidden files and folders (``.name``), names starting with ``_`` (``_SUCCESS``,
``_metadata``, ``_common_metadata``, Spark's ``_temporary``), ``*.crc``, ``*.json``
(Hugging Face's ``state.json``, ``dataset_info.json``), ``*.md`` and label sidecars
(``*.labels.{npy,txt,csv}``) are not data. Sub-folders are entered only when they are
hive partitions (``label=3/``), whose ``key=value`` gives every row of the files below a
column ``key``. Every other file must be data of one kind, told by its bytes: NPY, NPZ,
Parquet, or Arrow IPC (``ARROW1`` file format, or the stream format starting with
``\\xff\\xff\\xff\\xff``, which Hugging Face ``datasets.save_to_disk`` writes).

An NPY shard set may carry its ids and labels in Parquet files with the same stems
(embedding-reader's ``parquet_npy`` layout), beside the NPY files or in a folder
``metadata`` inside or next to the NPY folder.

Memory: NPY shards are memory-mapped; a set of one NPY file is returned as the memory map
itself, more shards are copied block by block into one preallocated matrix. Parquet is
read row group by row group, each decoded in batches of about 16 MiB, and Arrow IPC from a
memory map (zero-copy), each straight into the one preallocated matrix, so a folder needs
what one file needs: the matrix plus one batch. Parquet row counts are checked against
the footer: a footer that claims rows its row groups do not hold is an error, never
uninitialised rows.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import InputError

DATA_KINDS = ("npy", "npz", "parquet", "arrow")
KIND_NAMES = {"npy": "NPY", "npz": "NPZ", "parquet": "Parquet", "arrow": "Arrow IPC"}
IGNORED_SUFFIXES = (".crc", ".json", ".md")
GLOB_CHARS = frozenset("*?[")
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
LABEL_SIDECARS = (".labels.npy", ".labels.txt", ".labels.csv")
PARQUET_BUFFER = 1 << 20  # bytes read at a time from a Parquet column chunk
PARQUET_BATCH_BYTES = 16 << 20  # decoded bytes per batch of a row group


@dataclass(frozen=True)
class Shard:
    """One file of a dataset: rows ``start:stop`` of the dataset are its rows ``0:stop - start``.

    ``kind`` is ``npy``, ``npz``, ``parquet`` or ``arrow``; ``path`` is the file (``stdin``
    for a stream)."""

    path: str
    kind: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class Piece:
    """A data file found but not yet read: its path, its bytes when it is a stream (stdin,
    a FIFO, ``<(...)``), its kind, its first bytes and its hive partition values."""

    path: str
    kind: str
    head: bytes
    data: bytes | None = None
    partition: dict[str, str] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return Path(self.path).name.split(".")[0]


@dataclass(frozen=True)
class FileReaders:
    """The one-file readers :func:`read_pieces` calls for NPY, NPZ and label files
    (:mod:`embedkit.npyfile`, :mod:`embedkit.labelfile`; the latter imports this module, so
    :mod:`embedkit.io` passes them in)."""

    npy: Callable[[str | bytes, str], np.ndarray]
    npz: Callable[[str | bytes, str], tuple[np.ndarray, np.ndarray | None]]
    labels: Callable[[str], np.ndarray]


@dataclass(frozen=True)
class ShardRead:
    """What :func:`read_pieces` found: the matrix, the raw labels and ids, the shard map."""

    embeddings: np.ndarray
    shards: tuple[Shard, ...]
    labels: np.ndarray | None
    label_source: str | None
    ids: np.ndarray | None
    searched: tuple[str, ...]


def sniff_kind(head: bytes) -> str | None:
    """``npy``, ``npz``, ``parquet`` or ``arrow`` (IPC file or stream) from the first bytes."""
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC)):
        return "arrow"
    return None


def unknown_format(source: str, head: bytes) -> InputError:
    if head.startswith(b"FEA1"):  # Feather version 1 predates the Arrow IPC file format
        return InputError(f"{source}: is a Feather version 1 file; rewrite it as Feather v2 / Arrow IPC "
                          "(pyarrow.feather.write_feather(table, path) writes v2)")
    return InputError(f"{source}: not an NPY, NPZ, Parquet or Arrow IPC file (starts with {head[:8]!r})")


def is_shard_set(path: str) -> bool:
    """A folder, or a glob pattern that is not itself the name of an existing file."""
    return os.path.isdir(path) or (bool(GLOB_CHARS & set(path)) and not os.path.exists(path))


def contains(shard_set: str, path: str) -> bool:
    """Would a file written at ``path`` be read as part of the folder or glob ``shard_set``?"""
    if not shard_set or shard_set == "-" or not is_shard_set(shard_set):
        return False
    target = os.path.realpath(path)
    if os.path.isdir(shard_set):
        return target.startswith(os.path.realpath(shard_set).rstrip(os.sep) + os.sep)
    import fnmatch

    return fnmatch.fnmatch(path, shard_set) or fnmatch.fnmatch(target, os.path.realpath(shard_set))


def stream_piece(data: bytes, source: str) -> Piece:
    """The one piece of a stream already read whole (stdin, a FIFO)."""
    if not data:
        raise InputError(f"{source}: no data (expected an NPY, NPZ, Parquet or Arrow stream)")
    kind = sniff_kind(data[:8])
    if kind is None:
        raise unknown_format(source, data)
    return Piece(source, kind, data[:8], data)


def is_stream_path(path: str) -> bool:
    """A FIFO, a character device (``/dev/stdin`` on a terminal or pipe) or a socket:
    something that can be read once, front to back, but not reopened or seeked."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def read_stream_path(path: str) -> bytes:
    """All bytes of a stream path, read once."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def file_piece(path: str) -> Piece:
    """One file. Anything but a regular file (a FIFO, ``/dev/stdin``, process substitution)
    is read once, whole, and sniffed from those bytes: it cannot be reopened or seeked."""
    if is_stream_path(path):
        return stream_piece(read_stream_path(path), path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise InputError(f"{path}: not an NPY, NPZ, Parquet or Arrow IPC file (it is empty: 0 bytes)")
    kind = sniff_kind(head)
    if kind is None:
        raise unknown_format(path, head)
    return Piece(path, kind, head)


def _ignored(name: str) -> bool:
    return name.startswith((".", "_")) or name.endswith(IGNORED_SUFFIXES) or name.endswith(LABEL_SIDECARS)


def _partition(relative: str) -> dict[str, str]:
    """``label=3/part-0.parquet`` -> ``{"label": "3"}``."""
    parts = Path(relative).parts[:-1]
    return dict(part.split("=", 1) for part in parts if "=" in part)


def _walk(root: str) -> tuple[list[str], list[str]]:
    """Files of a folder, hive partitions included, in sorted order of their relative
    paths; and what was passed over (sub-folders that are not partitions, ignored names)."""
    files: list[str] = []
    skipped: list[str] = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        keep = sorted(d for d in dirs if not d.startswith((".", "_")) and "=" in d)
        skipped += [f"{d}/" for d in sorted(dirs) if d not in keep and not d.startswith(".")]
        dirs[:] = keep
        for name in names:
            (skipped if _ignored(name) else files).append(os.path.join(folder, name))
    return sorted(files, key=lambda p: os.path.relpath(p, root)), [os.path.basename(s) for s in skipped]


def _summary(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def open_pieces(path: str, *, exclude: Sequence[str | None] = ()) -> list[Piece]:
    """The data files that ``path`` names, in reading order, kinds checked to agree.

    ``path`` is one file, a folder or a glob pattern. ``exclude`` lists files never taken
    as data (the ``--labels`` file may sit in the folder)."""
    if not is_shard_set(path):
        return [file_piece(path)]
    skip = {os.path.realpath(p) for p in exclude if p}
    if os.path.isdir(path):
        files, passed = _walk(path)
        root = path
    else:
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise InputError(f"{path}: no such file, and no file matches it as a pattern")
        files, passed, root = [], [], os.path.dirname(path.split("*")[0].split("?")[0].split("[")[0]) or "."
        for match in matches:
            if os.path.isdir(match):
                inner, inner_passed = _walk(match)
                files += inner
                passed += inner_passed
            elif _ignored(os.path.basename(match)):
                passed.append(os.path.basename(match))
            else:
                files.append(match)
    files = [f for f in files if os.path.realpath(f) not in skip]
    if not files:
        found = f"found only: {_summary(passed)}" if passed else "it is empty"
        raise InputError(f"{path}: no data files (NPY, NPZ, Parquet or Arrow IPC); {found}")
    pieces = []
    for name in files:
        piece = file_piece(name)
        piece.partition = _partition(os.path.relpath(name, root))
        pieces.append(piece)
    return pieces


def _group(pieces: Sequence[Piece]) -> dict[str, list[Piece]]:
    kinds: dict[str, list[Piece]] = {}
    for piece in pieces:
        kinds.setdefault(piece.kind, []).append(piece)
    return kinds


def split_metadata(pieces: list[Piece], source: str) -> tuple[list[Piece], list[Piece]]:
    """``(data, metadata)``: one kind of data, plus the Parquet metadata of an NPY set.

    A set mixing kinds is an error, except NPY shards with Parquet files of the same stems
    (embedding-reader's ``parquet_npy``), where the Parquet files hold ids and labels."""
    kinds = _group(pieces)
    if len(kinds) == 1:
        data = pieces
        metadata = _metadata_folder(data, source) if data[0].kind == "npy" and os.path.isdir(source) else []
        return data, metadata
    if set(kinds) == {"npy", "parquet"} and [p.stem for p in kinds["npy"]] == [p.stem for p in kinds["parquet"]]:
        return kinds["npy"], kinds["parquet"]
    found = "; ".join(f"{len(v)} {KIND_NAMES[k]} ({_summary([Path(p.path).name for p in v], 2)})"
                      for k, v in kinds.items())
    raise InputError(f"{source}: mixes kinds of data files: {found}; expected one kind")


def _metadata_folder(data: list[Piece], source: str) -> list[Piece]:
    """Parquet files with the NPY shards' stems in ``metadata/`` inside or beside the folder."""
    stems = [p.stem for p in data]
    for folder in (os.path.join(source, "metadata"), os.path.join(os.path.dirname(os.path.abspath(source)), "metadata")):
        if not os.path.isdir(folder) or os.path.samefile(folder, source):
            continue
        names = sorted(n for n in os.listdir(folder) if n.endswith(".parquet") and not _ignored(n))
        if [n.split(".")[0] for n in names] == stems:
            return [file_piece(os.path.join(folder, n)) for n in names]
    return []


# --------------------------------------------------------------------------- reading


def _arrays_agree(shapes: Sequence[tuple[Piece, tuple[int, ...], np.dtype]], source: str) -> tuple[int, np.dtype]:
    """Every shard a 2-D float matrix of the first shard's width and dtype: ``(dim, dtype)``."""
    from embedkit.arrays import FLOAT_DTYPES

    first_piece, first_shape, first_dtype = shapes[0]
    for piece, shape, dtype in shapes:
        if len(shape) != 2:
            raise InputError(f"{piece.path}: shard must be a 2-D (rows, dim) matrix; found shape {shape}")
        if dtype not in FLOAT_DTYPES:
            raise InputError(f"{piece.path}: shard must be float16, float32 or float64; found {dtype}")
        if shape[1] != first_shape[1]:
            raise InputError(f"{piece.path}: shard has dimension {shape[1]}, but {first_piece.path} has "
                             f"{first_shape[1]}; all shards of {source} must agree")
        if dtype != first_dtype:
            raise InputError(f"{piece.path}: shard is {dtype}, but {first_piece.path} is {first_dtype}; "
                             f"all shards of {source} must agree")
    return int(first_shape[1]), np.dtype(first_dtype)


def _copy_rows(array: np.ndarray, out: np.ndarray, start: int) -> None:
    """Copy ``array`` into ``out[start:]`` in blocks (a memory map is never read whole)."""
    from embedkit.chunking import row_blocks, rows_per_block

    if not len(array) or not array.shape[1]:
        return
    step = rows_per_block(array.shape[1] * array.dtype.itemsize, budget_mib=32.0)
    for a, b, block in row_blocks(array, step):
        out[start + a : start + b] = block


def _shard_map(pieces: Sequence[Piece], counts: Sequence[int]) -> tuple[Shard, ...]:
    bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    return tuple(Shard(p.path, p.kind, int(a), int(b)) for p, a, b in zip(pieces, bounds[:-1], bounds[1:]))


def sidecar_candidates(path: str) -> list[str]:
    """Sidecar label files for ``path``: ``emb.npy`` -> ``emb.labels.npy``, ``.txt``, ``.csv``."""
    stem = str(Path(path).with_suffix("")) if Path(path).suffix else path
    return [stem + suffix for suffix in LABEL_SIDECARS]


def _sidecars(pieces: Sequence[Piece], source: str, readers: FileReaders) -> tuple[list[np.ndarray] | None, str | None, list[str],
                                                            list[str]]:
    """Per-shard label sidecars (``part-000.labels.npy`` ...): all shards or none."""
    found: list[tuple[Piece, str | None]] = []
    searched: list[str] = []
    for piece in pieces:
        candidates = sidecar_candidates(piece.path) if piece.data is None else []
        if len(pieces) == 1:
            searched += candidates
        found.append((piece, next((c for c in candidates if os.path.exists(c)), None)))
    if len(pieces) > 1:
        searched.append(f"a sidecar per shard of {source} (part-0.labels.npy, .txt or .csv beside part-0)")
    have = [f for f in found if f[1] is not None]
    if not have:
        return None, None, searched, []
    missing = next((p for p, s in found if s is None), None)
    if missing is not None:
        raise InputError(f"{missing.path}: shard has no label sidecar, but {have[0][1]} exists; "
                         "give every shard its labels, or one --labels file")
    files = [s for _, s in found if s is not None]
    where = files[0] if len(files) == 1 else f"{len(files)} sidecar files ({files[0]}, ...)"
    return [readers.labels(f) for f in files], where, searched, files


def _checked_labels(parts: list[np.ndarray], pieces: Sequence[Piece], counts: Sequence[int], what: str,
                    where: Sequence[str] | None = None) -> np.ndarray:
    """Concatenated per-shard values, each checked against its shard's row count."""
    for k, (piece, part, count) in enumerate(zip(pieces, parts, counts)):
        if len(part) != count:
            origin = where[k] if where is not None else piece.path
            raise InputError(f"{origin}: {what} has {len(part)} rows but embeddings has {count} ({piece.path})")
    return _concat_values(parts)


def _concat_values(parts: Sequence[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    kinds = {p.dtype.kind for p in parts}
    if len(kinds) > 1 and kinds & {"U", "S", "O"}:
        parts = [p.astype(str) for p in parts]
    return np.concatenate(parts)


def read_pieces(
    pieces: list[Piece],
    source: str,
    *,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    want_labels: bool = True,
    readers: FileReaders,
) -> ShardRead:
    """Read the shards as one dataset; see the module docstring for the rules."""
    data, metadata = split_metadata(pieces, source)
    kind = data[0].kind
    if kind in ("npy", "npz"):
        if column is not None:
            raise InputError(f"{source}: --column applies to Parquet or Arrow input, not {KIND_NAMES[kind]}")
        if id_column is not None and not metadata:
            raise InputError(f"{source}: --id-column applies to Parquet or Arrow input (or NPY shards with "
                             f"Parquet metadata), not {KIND_NAMES[kind]}")
        return _read_arrays(data, metadata, source, label_column=label_column, id_column=id_column,
                            want_labels=want_labels, readers=readers)
    return _read_columnar(data, source, column=column, label_column=label_column, id_column=id_column,
                          want_labels=want_labels, readers=readers)


def _read_arrays(data: list[Piece], metadata: list[Piece], source: str, *, label_column: str | None,
                 id_column: str | None, want_labels: bool, readers: FileReaders) -> ShardRead:
    def load(piece: Piece) -> tuple[np.ndarray, np.ndarray | None]:
        target = piece.data if piece.data is not None else piece.path
        if piece.kind == "npy":
            return readers.npy(target, piece.path), None
        return readers.npz(target, piece.path)

    members: list[np.ndarray | None] = []
    if len(data) == 1:
        embeddings, member = load(data[0])  # one file stays as it is (a memory map for NPY)
        members.append(member)
        counts = [len(embeddings) if embeddings.ndim else 0]
    else:
        # First pass: shapes and dtypes only (each map is dropped at once, so a set of
        # thousands of shards never holds thousands of open files); second pass: copy.
        shapes = []
        for piece in data:
            array, _ = load(piece)
            shapes.append((piece, tuple(int(n) for n in array.shape), array.dtype))
            del array
        dim, dtype = _arrays_agree(shapes, source)
        counts = [shape[0] for _, shape, _ in shapes]
        embeddings = np.empty((sum(counts), dim), dtype=dtype)
        start = 0
        for piece in data:
            array, member = load(piece)
            members.append(member)
            _copy_rows(array, embeddings, start)
            start += len(array)
            del array
    shards = _shard_map(data, counts)
    labels = ids = None
    label_source = None
    searched: list[str] = []
    if metadata:
        tables = [_ColumnarShard(p) for p in metadata]
        meta_source = f"{os.path.dirname(metadata[0].path) or '.'} (Parquet metadata)"
        want = label_column or ("label" if "label" in tables[0].names else None)
        searched.append(f"{meta_source} column '{label_column or 'label'}'")
        if want_labels and want is not None:
            labels = _checked_labels([t.scalar(want) for t in tables], metadata, counts, f"column '{want}'")
            label_source = f"{meta_source} column '{want}'"
        if id_column is not None:
            ids = _checked_labels([t.scalar(id_column) for t in tables], metadata, counts, f"column '{id_column}'")
    if data[0].kind == "npz":
        searched.append(f"{source}[labels]")
        present = [m is not None for m in members]
        if any(present) and not all(present):
            odd = data[present.index(not present[0])]
            raise InputError(f"{odd.path}: shard {'has' if not present[0] else 'lacks'} a 'labels' member, "
                             f"but {data[0].path} {'has' if present[0] else 'does not'}; shards must agree")
        if labels is None and want_labels and all(present):
            labels = _checked_labels([m for m in members if m is not None], data, counts, "member 'labels'")
            label_source = f"{source}[labels]"
    if labels is None and want_labels:
        parts, where, tried, files = _sidecars(data, source, readers)
        searched += tried
        if parts is not None:
            labels = _checked_labels(parts, data, counts, "labels", files)
            label_source = where
    return ShardRead(embeddings, shards, labels, label_source, ids, tuple(searched))


class _ColumnarShard:
    """A Parquet file (read one row group at a time) or an Arrow IPC file or stream
    (memory-mapped, zero-copy), with its hive partition values as extra scalar columns.

    Only the footer / schema is read on construction and the file is closed again: a set
    of thousands of shards never holds thousands of open files."""

    def __init__(self, piece: Piece) -> None:
        self.piece = piece
        self.path = piece.path
        self.partition = piece.partition
        self.group_rows: list[int] = []
        with self._opened() as handle:
            if piece.kind == "parquet":
                meta = handle.metadata
                self.schema = handle.schema_arrow
                self.group_rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                if sum(self.group_rows) != meta.num_rows:
                    raise InputError(f"{self.path}: Parquet footer says {meta.num_rows} rows but its row groups "
                                     f"hold {sum(self.group_rows)}; the file is damaged")
                self.rows = int(meta.num_rows)
            else:
                self.schema = handle.schema
                self.rows = int(handle.num_rows)
        refuse_duplicate_names(list(self.schema.names), self.path)
        self.names = [*self.schema.names, *(k for k in self.partition if k not in self.schema.names)]

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        """The open ``ParquetFile``, or the Arrow table (zero-copy over a memory map); closed after."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        piece = self.piece
        what = "Parquet" if piece.kind == "parquet" else "Arrow IPC"
        source: Any = None
        try:
            if piece.kind == "parquet":
                # Buffered page reads, no pre-buffering of whole column chunks: a row group is
                # decoded batch by batch (a 1M-row group read whole costs ~5x its matrix).
                source = pq.ParquetFile(pa.BufferReader(piece.data) if piece.data is not None else piece.path,
                                        pre_buffer=False, buffer_size=PARQUET_BUFFER)
                handle: Any = source
            else:
                source = pa.BufferReader(piece.data) if piece.data is not None else pa.memory_map(piece.path)
                opener = pa.ipc.open_file if piece.head.startswith(ARROW_FILE_MAGIC) else pa.ipc.open_stream
                handle = opener(source).read_all()
        except (pa.ArrowException, OSError) as exc:
            if source is not None:
                source.close()
            raise InputError(f"{self.path}: not a readable {what} file ({_first_line(exc)})") from None
        try:
            yield handle
        finally:
            del handle
            source.close()

    def chunks(self, name: str) -> Iterator[Any]:
        """The column's Arrow arrays in row order; Parquet row counts checked against the footer.
        Each array is valid until the next one is asked for (copy what you keep)."""
        import pyarrow as pa

        with self._opened() as handle:
            if self.piece.kind != "parquet":
                yield from handle.column(name).chunks
                return
            meta = handle.metadata
            for group, expected in enumerate(self.group_rows):
                per_row = max(1, meta.row_group(group).total_byte_size // max(1, expected))
                batch = int(min(65536, max(256, PARQUET_BATCH_BYTES // per_row)))
                got = 0
                try:
                    for record_batch in handle.iter_batches(batch_size=batch, row_groups=[group], columns=[name],
                                                            use_threads=False):
                        got += record_batch.num_rows
                        if got > expected:
                            break
                        yield record_batch.column(0)
                except (pa.ArrowException, OSError) as exc:
                    raise InputError(f"{self.path}: row group {group} is unreadable ({_first_line(exc)})") from None
                if got != expected:
                    raise InputError(f"{self.path}: row group {group} holds {'more than ' if got > expected else ''}"
                                     f"{got} rows but the footer says {expected}; the file is damaged")

    def scalar(self, name: str) -> np.ndarray:
        """A one-value-per-row column (labels, ids), or a hive partition key."""
        import pyarrow as pa

        if name not in self.schema.names:
            if name in self.partition:
                value = self.partition[name]
                try:
                    return np.full(self.rows, int(value), dtype=np.int64)
                except ValueError:
                    return np.full(self.rows, value)
            raise InputError(f"{self.path}: no column '{name}' (columns: {', '.join(self.names)})")
        if is_vector_type(self.schema.field(name).type):
            raise InputError(f"{self.path}: column '{name}' holds lists, expected one value per row")
        refuse_non_scalar(self.schema.field(name).type, f"{self.path}: column '{name}'")
        parts = []
        done = 0
        for chunk in self.chunks(name):
            assert isinstance(chunk, pa.Array)
            if chunk.null_count:
                first = done + int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError(f"{self.path}: column '{name}' has null values (first at row {first}); "
                                 "expected a value in every row")
            done += len(chunk)
            parts.append(np.array(chunk.to_numpy(zero_copy_only=False)))  # a copy: the map closes after
        values = np.concatenate(parts) if parts else np.empty(0)
        return values.astype(str) if values.dtype == object else values


def refuse_duplicate_names(names: list[str], source: str) -> None:
    """Two columns with one name make every lookup ambiguous: refuse the table."""
    from collections import Counter

    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InputError(f"{source}: duplicate column name(s) {', '.join(repeated)}; column names must be unique")


def refuse_non_scalar(dtype: Any, what: str) -> None:
    """Labels and ids are integers, floats, strings, booleans, dates or times; refuse the rest."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    t = pa.types
    if t.is_struct(dtype) or t.is_map(dtype) or t.is_union(dtype) or is_vector_type(dtype):
        raise InputError(f"{what} holds {dtype} values; expected one integer or string per row")
    if t.is_binary(dtype) or t.is_large_binary(dtype) or t.is_fixed_size_binary(dtype):
        raise InputError(f"{what} holds binary values; expected integers or strings (store text as a string column)")
    if t.is_null(dtype):
        raise InputError(f"{what} holds only nulls; expected a value in every row")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def is_vector_type(dtype: object) -> bool:
    """Whether an Arrow type is a list of values (``list``, ``large_list``, ``fixed_size_list``)."""
    import pyarrow as pa

    return bool(pa.types.is_fixed_size_list(dtype) or pa.types.is_list(dtype) or pa.types.is_large_list(dtype))


def embedding_column(schema: object, column: str | None, source: str) -> str:
    """The vector column: ``column`` if given, else the only list-of-float column."""
    import pyarrow as pa

    assert isinstance(schema, pa.Schema)
    if column is not None:
        if column not in schema.names:
            raise InputError(f"{source}: no column '{column}' (columns: {', '.join(schema.names)})")
        type_ = schema.field(column).type
        if not is_vector_type(type_) or not pa.types.is_floating(type_.value_type):
            raise InputError(f"{source}: column '{column}' is {type_}; expected a list of floats")
        return column
    floats = [f.name for f in schema if is_vector_type(f.type) and pa.types.is_floating(f.type.value_type)]
    if len(floats) == 1:
        return str(floats[0])
    if not floats:
        found = ", ".join(f"{f.name}: {f.type}" for f in schema)
        raise InputError(f"{source}: no list-of-float embedding column (columns: {found})")
    raise InputError(f"{source}: several embedding columns ({', '.join(floats)}); choose one with --column")


def arrow_vectors(array: object, name: str, first_row: int, source: str) -> np.ndarray:
    """A list / fixed-size-list Arrow array as a ``(rows, dim)`` matrix; ``first_row`` is the
    dataset row of its first element (for messages)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    assert isinstance(array, pa.Array)
    if array.null_count:
        bad = first_row + int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{source}: column '{name}' row {bad} is null")
    if pa.types.is_fixed_size_list(array.type):
        dim = array.type.list_size
    else:
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        dim = int(lengths[0]) if len(lengths) else 0
        ragged = np.flatnonzero(lengths != dim)
        if len(ragged):
            row = first_row + int(ragged[0])
            raise InputError(
                f"{source}: column '{name}' is ragged: row {row} has {int(lengths[ragged[0]])} "
                f"values, row {first_row} has {dim}"
            )
    values = array.flatten()
    if values.null_count:
        raise InputError(f"{source}: column '{name}' has null values inside vectors")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(len(array), dim) if dim else np.empty((len(array), 0), flat.dtype)


def _schemas_agree(tables: Sequence[_ColumnarShard], name: str, source: str) -> None:
    """Same columns, types, embedding dtype and partition keys as the first shard."""
    first = tables[0]
    want = first.schema.remove_metadata()
    for table in tables[1:]:
        schema = table.schema.remove_metadata()
        if name not in schema.names:
            raise InputError(f"{table.path}: shard has no column '{name}', but {first.path} has; "
                             f"all shards of {source} must agree")
        a, b = want.field(name).type, schema.field(name).type
        if a.value_type != b.value_type:
            raise InputError(f"{table.path}: embeddings are {b.value_type}, but {first.path} has {a.value_type}; "
                             f"all shards of {source} must agree")
        if (pa_fixed := getattr(a, "list_size", None)) != getattr(b, "list_size", None) and pa_fixed is not None \
                and getattr(b, "list_size", None) is not None:
            raise InputError(f"{table.path}: shard has dimension {b.list_size}, but {first.path} has {pa_fixed}; "
                             f"all shards of {source} must agree")
        if sorted(table.partition) != sorted(first.partition):
            raise InputError(f"{table.path}: partition keys {sorted(table.partition)} differ from "
                             f"{first.path}'s {sorted(first.partition)}")
        if not schema.equals(want):
            extra = [n for n in schema.names if n not in want.names]
            missing = [n for n in want.names if n not in schema.names]
            changed = [f"{n}: {schema.field(n).type} vs {want.field(n).type}" for n in schema.names
                       if n in want.names and schema.field(n) != want.field(n)]
            detail = "; ".join(filter(None, [
                f"has no column {', '.join(repr(m) for m in missing)}" if missing else "",
                f"has extra column {', '.join(repr(e) for e in extra)}" if extra else "",
                f"column {', '.join(changed)}" if changed else "",
            ])) or "column order differs"
            raise InputError(f"{table.path}: schema differs from {first.path} ({detail}); "
                             f"all shards of {source} must agree")


def _fill(tables: Sequence[_ColumnarShard], name: str, total: int) -> np.ndarray:
    """The vector column of every table, in order, copied into one ``(total, dim)`` matrix."""
    dtype = np.dtype(tables[0].schema.field(name).type.value_type.to_pandas_dtype())
    out: np.ndarray | None = None
    start = 0
    for table in tables:
        stop = start + table.rows
        for chunk in table.chunks(name):
            block = arrow_vectors(chunk, name, start, table.path)
            if out is None:
                out = np.empty((total, block.shape[1]), dtype=dtype)
            elif block.shape[1] != out.shape[1]:
                first = tables[0].path if table is not tables[0] else "earlier rows"
                raise InputError(f"{table.path}: column '{name}' row {start} has {block.shape[1]} values, but "
                                 f"{first} {'has' if table is not tables[0] else 'have'} {out.shape[1]}")
            if start + len(block) > stop:
                raise InputError(f"{table.path}: holds more rows than its metadata says ({table.rows})")
            out[start : start + len(block)] = block
            start += len(block)
        if start != stop:
            raise InputError(f"{table.path}: holds {table.rows - (stop - start)} rows but its metadata says "
                             f"{table.rows}; the file is damaged")
    assert out is not None
    return out


def read_shard(shard: Shard, *, column: str | None = None) -> np.ndarray:
    """Rows ``shard.start:shard.stop`` of a dataset, read from the shard's file alone, as a
    worker of a distributed engine would: NPY as a read-only memory map, NPZ whole, Parquet
    (batch by batch) and Arrow IPC into one array. A file whose row count no longer matches
    ``shard`` is an error."""
    piece = file_piece(shard.path)
    if piece.kind == "npy":
        array = np.load(shard.path, mmap_mode="r", allow_pickle=False)
    elif piece.kind == "npz":
        with np.load(shard.path, allow_pickle=False) as archive:
            array = archive["embeddings"]
    else:
        table = _ColumnarShard(piece)
        name = embedding_column(table.schema, column, shard.path)
        array = _fill([table], name, table.rows) if table.rows else np.empty((0, 0), np.float32)
    if len(array) != shard.rows:
        raise InputError(f"{shard.path}: holds {len(array)} rows, but the dataset read {shard.rows} from it "
                         "(the file changed since)")
    return array


def _read_columnar(data: list[Piece], source: str, *, column: str | None, label_column: str | None,
                   id_column: str | None, want_labels: bool, readers: FileReaders) -> ShardRead:
    tables = [_ColumnarShard(p) for p in data]
    name = embedding_column(tables[0].schema, column, tables[0].path)
    _schemas_agree(tables, name, source)
    counts = [t.rows for t in tables]
    total = sum(counts)
    if total == 0:
        raise InputError(f"{source}: {'the shards hold' if len(tables) > 1 else 'the file holds'} no rows")
    out = _fill(tables, name, total)
    shards = _shard_map(data, counts)
    labels = ids = None
    label_source = None
    names = tables[0].names
    want = label_column or ("label" if "label" in names else None)
    searched = [f"{source} column '{label_column or 'label'}'"]
    if want_labels and want is not None:
        labels = _concat_values([t.scalar(want) for t in tables])
        label_source = f"{source} column '{want}'"
    elif want_labels and label_column is not None:
        raise InputError(f"{source}: no column '{label_column}' for labels")
    if want_labels and labels is None:
        parts, where, tried, files = _sidecars(data, source, readers)
        searched += tried
        if parts is not None:
            labels = _checked_labels(parts, data, counts, "labels", files)
            label_source = where
    if id_column is not None:
        ids = _concat_values([t.scalar(id_column) for t in tables])
    return ShardRead(out, shards, labels, label_source, ids, tuple(searched))
