"""Where blocked work runs: ``local`` threads or a ``dask`` cluster, chosen by name.

>>> with make_engine("local", workers=1) as engine:
...     list(engine.map(lambda shared, item: shared + item, 10, [1, 2, 3]))
[11, 12, 13]
"""

from __future__ import annotations

from embedkit.engines.base import Engine, Progress, available_cores
from embedkit.engines.local import LocalEngine, local_threads, ordered_map
from embedkit.errors import OptionError

__all__ = ["Engine", "LocalEngine", "Progress", "available_cores", "local_threads", "make_engine", "ordered_map"]


def make_engine(name: str, *, workers: int | None = None, scheduler: str | None = None,
                parts_dir: str | None = None) -> Engine:
    """``local`` (threads here) or ``dask`` (imported only when asked for) by name."""
    if name == "local":
        if scheduler:
            raise OptionError("--scheduler applies to --engine dask")
        if parts_dir:
            raise OptionError("--parts-dir applies to --engine dask")
        return LocalEngine(workers)
    if name == "dask":
        from embedkit.engines.dask import DaskEngine

        return DaskEngine(scheduler, workers=workers, parts_dir=parts_dir)
    raise OptionError(f"unknown engine {name!r}; expected local or dask")
