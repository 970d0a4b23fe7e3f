"""Reading a small table (pairs, triplets, candidates) from Parquet, CSV or JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from embedkit.columnar import refuse_duplicate_names
from embedkit.errors import InputError
from embedkit.formats import PARQUET_MAGIC, STDIN, read_head, read_stdin_bytes, sniff_format
from embedkit.labelfile import INT64_MAX
from embedkit.shard_paths import is_stream_path, read_stream_path


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
        head = read_head(path)
        suffix = Path(path).suffix.lower()
        fmt = "parquet" if head.startswith(PARQUET_MAGIC) else ("jsonl" if suffix in (".jsonl", ".ndjson", ".json") else "csv")
        if sniff_format(head) in ("npy", "npz"):
            raise InputError(f"{source}: is an NPY/NPZ file; expected a CSV, JSON-lines or Parquet table")
        target = path
    try:
        if fmt == "parquet":
            parquet = pq.ParquetFile(target)
            refuse_duplicate_names(parquet.schema_arrow.names, source)
            table = parquet.read()
        elif fmt == "jsonl":
            table = pajson.read_json(target)
        else:
            table = pacsv.read_csv(target)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: not a readable {fmt.upper()} table ({first})") from None
    refuse_duplicate_names(table.column_names, source)
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
