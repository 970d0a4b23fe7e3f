"""Writing result tables (Parquet, CSV, JSON lines) atomically.

An output is written to a hidden temporary file in the target folder and renamed into
place only when complete, so an interrupted or failed run never leaves a partial file.
An output path that names one of the inputs is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from embedkit.errors import OptionError

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def table_format(path: str) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the extension; ``-`` means CSV on stdout."""
    if path == "-":
        return "csv"
    fmt = TABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OptionError(f"{path}: unknown output format; use .parquet, .csv or .jsonl (or - for CSV on stdout)")
    return fmt


def check_output_path(path: str, inputs: Sequence[str | None]) -> None:
    """Refuse an output that is one of the inputs or lies in a missing folder."""
    if path == "-":
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OptionError(f"{path}: output folder {folder} does not exist")
    if target.is_dir():
        raise OptionError(f"{path}: is a directory; expected an output file name")
    try:  # fail before the work, not after it: can a file be created there at all?
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OptionError(f"{path}: cannot write in folder {folder} ({exc.strerror or exc})") from None
    for item in inputs:
        if item is None or item == "-":
            continue
        if os.path.realpath(item) == os.path.realpath(path) or (
            target.exists() and os.path.exists(item) and os.path.samefile(item, path)
        ):
            raise OptionError(f"{path}: output path is also an input; refusing to overwrite it")


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it into place on success only."""
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
    except OSError as exc:
        raise OptionError(f"{path}: cannot create the output ({exc.strerror or exc})") from None
    os.close(handle)
    try:
        yield temporary
        # mkstemp creates 0600; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise OptionError(f"{path}: cannot write the output ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_table(
    columns: Mapping[str, np.ndarray],
    path: str,
    *,
    inputs: Sequence[str | None] = (),
    stdout: BinaryIO | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write equal-length columns to ``path`` (format from its extension) atomically.

    ``metadata`` goes into a Parquet file's schema metadata (CSV and JSON lines have none).
    """
    fmt = table_format(path)
    check_output_path(path, inputs)
    table = pa.table({name: np.asarray(values) for name, values in columns.items()})
    if metadata and fmt == "parquet":
        table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    if path == "-":
        sink = stdout if stdout is not None else sys.stdout.buffer
        _write(table, fmt, sink)
        sink.flush()
        return
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as sink:
            _write(table, fmt, sink)


#: Parquet metadata key under which ``embedkit mine`` records how its items were mined (JSON).
MINED_KEY = "embedkit.mine"


def mined_form(path: str) -> dict[str, object] | None:
    """What ``embedkit mine`` recorded in a Parquet file it wrote (strategy, margin, squared,
    metric), or ``None`` (not Parquet, not from mine, stdin, unreadable)."""
    if path == "-":
        return None
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PAR1":
                return None
        found = (pq.read_schema(path).metadata or {}).get(MINED_KEY.encode())
        return json.loads(found) if found else None
    except (OSError, ValueError, pa.ArrowException):
        return None


def _write(table: pa.Table, fmt: str, sink: BinaryIO) -> None:
    if fmt == "parquet":
        pq.write_table(table, sink)
    elif fmt == "csv":
        pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    else:
        names = table.column_names
        for batch in table.to_batches(max_chunksize=65536):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            lines = (json.dumps(dict(zip(names, row))) for row in zip(*columns))
            sink.write(("\n".join(lines) + "\n").encode())
