"""Which files a path names: one file, a folder or a glob of shards, stdin or a FIFO; each
file's kind told by its bytes.

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
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from embedkit.errors import InputError

DATA_KINDS = ("npy", "npz", "parquet", "arrow")
KIND_NAMES = {"npy": "NPY", "npz": "NPZ", "parquet": "Parquet", "arrow": "Arrow IPC"}
IGNORED_SUFFIXES = (".crc", ".json", ".md")
GLOB_CHARS = frozenset("*?[")
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
LABEL_SIDECARS = (".labels.npy", ".labels.txt", ".labels.csv")


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


def sidecar_candidates(path: str) -> list[str]:
    """Sidecar label files for ``path``: ``emb.npy`` -> ``emb.labels.npy``, ``.txt``, ``.csv``."""
    stem = str(Path(path).with_suffix("")) if Path(path).suffix else path
    return [stem + suffix for suffix in LABEL_SIDECARS]
