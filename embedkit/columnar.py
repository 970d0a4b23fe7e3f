"""Parquet and Arrow IPC shards as columns: the embedding column (``list`` or
``fixed_size_list`` of floats) decoded batch by batch into one preallocated matrix, scalar
columns (labels, ids, hive partition values) beside it, schemas checked to agree.

Parquet is read row group by row group, each decoded in batches of about 16 MiB, and Arrow
IPC from a memory map (zero-copy). Parquet row counts are checked against the footer: a
footer that claims rows its row groups do not hold is an error, never uninitialised rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from embedkit.errors import InputError
from embedkit.shard_paths import ARROW_FILE_MAGIC, Piece

PARQUET_BUFFER = 1 << 20  # bytes read at a time from a Parquet column chunk
PARQUET_BATCH_BYTES = 16 << 20  # decoded bytes per batch of a row group


class ColumnarShard:
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


def schemas_agree(tables: Sequence[ColumnarShard], name: str, source: str) -> None:
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


def fill_matrix(tables: Sequence[ColumnarShard], name: str, total: int) -> np.ndarray:
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
