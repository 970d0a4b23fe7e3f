"""Writing result tables (Parquet, CSV, JSON lines) atomically.

An output is written to a hidden temporary file in the target folder and renamed into
place only when complete, so an interrupted or failed run never leaves a partial file.
An output path that names one of the inputs is refused.

Special files (character or block devices, FIFOs, sockets) are never replaced: they
are written in place, and a write error on them (``ENOSPC`` on a ``/dev/full``-like
node) is an :class:`OptionError`. Temporary files are named
``.NAME.PID.XXXXXXXX.partial``; a run that writes into a folder first removes the
partial files of ours whose writing process is gone (a SIGKILL leaves them behind).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # pyarrow is imported where a table is written
    import pyarrow as pa

from embedkit.errors import OptionError
from embedkit.formats import STDIN
from embedkit.shard_paths import contains, sidecar_candidates

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def table_format(path: str) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the extension; ``-`` means CSV on stdout."""
    if path == "-":
        return "csv"
    fmt = TABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OptionError(f"{path}: unknown output format; use .parquet, .csv or .jsonl (or - for CSV on stdout)")
    return fmt


def is_special_file(path: str) -> bool:
    """True when ``path`` exists and is a device, FIFO or socket (written in place, never replaced)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


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
    if is_special_file(path):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            raise OptionError(f"{path}: is a socket; expected a file, a device or a FIFO")
        _refuse_inputs(path, inputs)
        return  # written in place: the folder itself need not be writable
    try:  # fail before the work, not after it: can a file be created there at all?
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OptionError(f"{path}: cannot write in folder {folder} ({exc.strerror or exc})") from None
    _refuse_inputs(path, inputs)


def _refuse_inputs(path: str, inputs: Sequence[str | None]) -> None:
    target = Path(path)
    for item in inputs:
        if item is None or item == "-":
            continue
        if os.path.realpath(item) == os.path.realpath(path) or (
            target.exists() and os.path.exists(item) and os.path.samefile(item, path)
        ):
            raise OptionError(f"{path}: output path is also an input; refusing to overwrite it")


#: ``.NAME.PID.XXXXXXXX.partial``: the temporary files :func:`atomic_output` creates.
PARTIAL_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<rand>[a-z0-9_]{8})\.partial$")
#: Temporary files of embedkit 0.1 (no pid in the name) are removed once this old.
LEGACY_PARTIAL_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<rand>[a-z0-9_]{8})\.partial$")
LEGACY_PARTIAL_AGE_S = 3600.0


def refuse_output_in_shard_sets(output: str | None, inputs: Sequence[str | None]) -> None:
    """An output inside an input folder (or matching an input glob) would be read as a shard
    by the next run: refuse it before any work."""
    if output is None or output == STDIN:
        return
    for item in inputs:
        if item and contains(item, output):
            raise OptionError(f"{output}: lies inside the input {item}, where the next run would read it as a "
                              "shard; write it elsewhere")


def guarded_inputs(embeddings: Sequence[str | None], others: Sequence[str | None] = ()) -> list[str]:
    """Every file an output must not overwrite: the inputs, and the sidecar label files
    (``emb.labels.npy``, ...) each embeddings file may read."""
    files = [p for p in embeddings if p and p != STDIN]
    return [*files, *(p for p in others if p and p != STDIN), *(s for p in files for s in sidecar_candidates(p))]


def _process_start_time(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` from /proc (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def _writer_is_gone(pid: int, modified: float) -> bool:
    """Is the process that wrote a partial file (``pid``, last write at ``modified``) gone?

    A live pid counts as the writer unless it started after the file's last write
    (the pid was reused by another process)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by someone else
    except OSError:
        return False
    started = _process_start_time(pid)
    return started is not None and started > modified + 1.0


def remove_stale_partials(folder: str | Path) -> list[str]:
    """Remove our temporary files in ``folder`` whose writer is gone; return their names.

    Only regular files whose name matches ``.NAME.PID.XXXXXXXX.partial`` (and 0.1's
    ``.NAME.XXXXXXXX.partial`` when older than an hour) are candidates, so concurrent
    runs writing into the same folder keep their temporary files."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.endswith(".partial"):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        match = PARTIAL_PATTERN.match(entry.name)
        if match is not None:
            stale = _writer_is_gone(int(match["pid"]), info.st_mtime)
        else:
            stale = LEGACY_PARTIAL_PATTERN.match(entry.name) is not None and now - info.st_mtime > LEGACY_PARTIAL_AGE_S
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it into place on success only.

    A special file (device, FIFO) is yielded itself: it is written in place, never replaced."""
    target = Path(path)
    if is_special_file(path):
        try:
            yield path
        except OSError as exc:
            raise OptionError(f"{path}: cannot write the output ({exc.strerror or exc})") from None
        return
    folder = target.parent if str(target.parent) else Path(".")
    remove_stale_partials(folder)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=folder)
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
    import pyarrow as pa

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
    import pyarrow as pa
    import pyarrow.parquet as pq

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
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, sink)
    elif fmt == "csv":
        pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    else:
        names = table.column_names
        for batch in table.to_batches(max_chunksize=65536):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            lines = (json.dumps(dict(zip(names, row)), default=_json_value) for row in zip(*columns))
            sink.write(("\n".join(lines) + "\n").encode())


def _json_value(value: object) -> object:
    """JSON for what ``json`` cannot write: dates and times as ISO 8601, bytes as text, decimals as strings."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)
