"""Rendering shared by every command: consoles, number formats, JSON, progress bars.

Command-specific tables live in the sibling modules (``cli.render.loss``, ...). The
result of a command goes to stdout; progress and, when stdout carries data, summaries
go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from embedkit.choices import DEFAULT_BUDGET_MIB

if TYPE_CHECKING:  # the engines import threadpoolctl: not for a type
    from embedkit.engines import Progress as ProgressCallback
    from embedkit.execution import Execution


def stdout_console() -> Console:
    """Console for a command's result. Long lines are not wrapped (grep-able output)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    """Console for summaries and progress that must not mix with data on stdout."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def labels_text(dataset: Any) -> str:
    """Where the labels came from and how many classes: ``emb.labels.npy, 40 classes``."""
    if getattr(dataset, "labels", None) is None:
        searched = getattr(dataset, "labels_searched", ())
        return "none" + (f" (looked for {', '.join(searched)})" if searched else "")
    names = getattr(dataset, "label_names", None)
    classes = len(names) if names is not None else len(np.unique(dataset.labels))
    return f"{dataset.label_source}, {classes:,} classes"


def engine_text(engine: Any) -> str:
    """``local, 2 threads`` or ``dask, LocalCluster of 2 workers at tcp://...``."""
    from embedkit.engines import available_cores

    if getattr(engine, "name", "") == "dask":
        cluster = "LocalCluster" if getattr(engine, "cluster", None) is not None else "scheduler"
        workers = ""
        client = getattr(engine, "client", None)
        try:
            workers = f" of {len(client.scheduler_info().get('workers', {})):,} workers" if client else ""
        except Exception:  # an unreachable scheduler was refused earlier; this is only a description
            workers = ""
        return f"dask, {cluster}{workers} at {getattr(engine, 'address', '?')}"
    threads = getattr(engine, "workers", None) or available_cores()
    return f"local, {threads} thread{'s' if threads != 1 else ''}"


def wrote(path: str, detail: str, *, quiet: bool, verb: str = "wrote") -> None:
    """``wrote t.parquet (12,000 rows)`` on stderr (stdout keeps the result); nothing with -q
    or when the data went to stdout itself."""
    if quiet or path == "-":
        return
    if not path:  # a note: the detail is the text
        print(f"{verb} {detail}", file=sys.stderr, flush=True)
        return
    print(f"{verb} {path}" + (f" ({detail})" if detail else ""), file=sys.stderr, flush=True)


def shard_count(shards: tuple[Any, ...]) -> int:
    """How many files a dataset was read from (1 for a single file or stdin)."""
    return max(1, len(shards))


def shards_note(shards: tuple[Any, ...]) -> str:
    """``", 8 Parquet shards"`` for a shard set; nothing for one file."""
    if len(shards) <= 1:
        return ""
    kinds = sorted({s.kind for s in shards})
    names = {"npy": "NPY", "npz": "NPZ", "parquet": "Parquet", "arrow": "Arrow IPC"}
    return f", {len(shards):,} {'/'.join(names.get(k, k) for k in kinds)} shards"


def percent(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` with 3 significant digits.

    >>> percent(1, 3), percent(3.3741, 304354709.4)
    ('33.3%', '1.11e-06%')
    """
    if whole == 0:
        return "-"
    return f"{100.0 * part / whole:.3g}%"


def number(value: float | int | None, digits: int = 4) -> str:
    """A table cell: ``digits`` decimals, scientific for tiny non-zero values.

    >>> number(0.0229437), number(0.000101), number(0.0), number(3)
    ('0.0229', '1.010e-04', '0', '3')
    """
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if v == 0:
        return "0"
    if math.isinf(v) or math.isnan(v):
        return str(v)
    if abs(v) < 10 ** (-digits + 1) or abs(v) >= 1e9:
        return f"{v:.3e}"
    return f"{v:.{digits}f}"


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples and dataclass-like dicts, as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def print_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout, ASCII only (non-ASCII escaped): valid in any stdout encoding."""
    sys.stdout.write(json.dumps(to_jsonable(payload), ensure_ascii=True) + "\n")
    sys.stdout.flush()


def rows_of(table: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A column table as a list of row dicts."""
    if not table:
        return []
    names = list(table)
    return [dict(zip(names, values)) for values in zip(*(table[n].tolist() for n in names))]


@contextlib.contextmanager
def running(description: str, *, engine: str = "local", workers: int | None = None, scheduler: str | None = None,
            parts_dir: str | None = None, budget_mib: float = DEFAULT_BUDGET_MIB,
            quiet: bool = False) -> Iterator[Execution]:
    """The :class:`~embedkit.execution.Execution` the options name: their engine (closed on
    exit), their memory budget, and a progress bar on stderr titled ``description`` (none
    with ``quiet``, or when stderr is not a terminal)."""
    from embedkit.engines import make_engine
    from embedkit.execution import Execution

    with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
            progress_bar(description, enabled=not quiet) as progress:
        yield Execution(runner, budget_mib, progress)


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A Rich progress bar on stderr when it is a terminal and ``enabled``; else no callback."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
