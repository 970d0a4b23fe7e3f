"""One dataset from many files: folders, globs, NPY shard sets, Parquet and Arrow IPC (file and
stream), read into one matrix with a map of which rows came from which file.

Which files a path names: :mod:`embedkit.shard_paths`; Parquet and Arrow columns:
:mod:`embedkit.columnar`.

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

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedkit.columnar import ColumnarShard, embedding_column, fill_matrix, schemas_agree
from embedkit.errors import InputError
from embedkit.shard_paths import (
    KIND_NAMES,
    Piece,
    Shard,
    file_piece,
    sidecar_candidates,
    split_metadata,
)


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
        tables = [ColumnarShard(p) for p in metadata]
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
        table = ColumnarShard(piece)
        name = embedding_column(table.schema, column, shard.path)
        array = fill_matrix([table], name, table.rows) if table.rows else np.empty((0, 0), np.float32)
    if len(array) != shard.rows:
        raise InputError(f"{shard.path}: holds {len(array)} rows, but the dataset read {shard.rows} from it "
                         "(the file changed since)")
    return array


def _read_columnar(data: list[Piece], source: str, *, column: str | None, label_column: str | None,
                   id_column: str | None, want_labels: bool, readers: FileReaders) -> ShardRead:
    tables = [ColumnarShard(p) for p in data]
    name = embedding_column(tables[0].schema, column, tables[0].path)
    schemas_agree(tables, name, source)
    counts = [t.rows for t in tables]
    total = sum(counts)
    if total == 0:
        raise InputError(f"{source}: {'the shards hold' if len(tables) > 1 else 'the file holds'} no rows")
    out = fill_matrix(tables, name, total)
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
