"""Where blocked work runs: the executor seam shared by the algorithms.

Algorithms submit independent tasks (a stripe of rows, a shard of anchors) to a
``concurrent.futures.Executor`` and merge results in submission order, so the answer
does not depend on which worker ran what or when.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

from embedkit.errors import OptionError

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def local_threads(workers: int | None = None) -> Iterator[Executor]:
    """A thread pool of ``workers`` (default: all cores) with BLAS pinned to one thread each.

    numpy's BLAS calls and the numba kernels release the GIL, so threads scale; one BLAS
    thread per worker keeps them from oversubscribing the cores.
    """
    count = min(workers or available_cores(), 1024)  # knn.MAX_WORKERS (no faiss import here)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=count) as pool:
        yield pool


def ordered_map(
    executor: Executor,
    task: Callable[[T], R],
    items: Iterable[T],
    *,
    weights: list[int] | None = None,
    progress: Progress | None = None,
) -> Iterator[R]:
    """Run ``task`` over ``items`` on ``executor``; yield results in input order.

    ``progress(done, total)`` is called as results arrive, ``weights`` giving each item's share.
    """
    futures: list[Future[R]] = [executor.submit(task, item) for item in items]
    total = sum(weights) if weights is not None else len(futures)
    done = 0
    try:
        for index, future in enumerate(futures):
            result = future.result()
            done += weights[index] if weights is not None else 1
            if progress is not None:
                progress(done, total)
            yield result
    finally:
        # On Ctrl-C, an error or an abandoned generator, queued tasks must not run on:
        # only the tasks already running are waited for.
        for future in futures:
            future.cancel()


class Engine:
    """Runs independent tasks ``task(shared, item)`` and yields their results in item order.

    ``shared`` is one large read-only value (embeddings, labels) that :meth:`share` makes
    available to every worker once, instead of with every task. Implementations: the
    in-process :class:`LocalEngine` and :class:`embedkit.dask_engine.DaskEngine`.
    """

    name = "engine"
    #: True when tasks run in other processes or hosts (they cannot share this process's
    #: FAISS indexes or thread pools).
    distributed = False

    def share(self, value: Any) -> Any:
        """A handle on ``value`` that :meth:`map` passes to tasks."""
        return value

    def map(
        self,
        task: Callable[[Any, T], R],
        shared: Any,
        items: Sequence[T],
        *,
        weights: list[int] | None = None,
        progress: Progress | None = None,
    ) -> Iterator[R]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers and clusters the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    """Threads in this process (BLAS pinned to one thread each); ``shared`` is passed as is."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def map(
        self,
        task: Callable[[Any, T], R],
        shared: Any,
        items: Sequence[T],
        *,
        weights: list[int] | None = None,
        progress: Progress | None = None,
    ) -> Iterator[R]:
        with local_threads(self.workers) as pool:
            yield from ordered_map(pool, functools.partial(task, shared), items, weights=weights, progress=progress)


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
        from embedkit.dask_engine import DaskEngine

        return DaskEngine(scheduler, workers=workers, parts_dir=parts_dir)
    raise OptionError(f"unknown engine {name!r}; expected local or dask")
