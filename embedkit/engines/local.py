"""The local engine: threads in this process, BLAS pinned to one thread each.

Tasks (a stripe of rows, a shard of anchors) go to a ``concurrent.futures`` thread pool and
results are merged in submission order.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from threadpoolctl import threadpool_limits

from embedkit.engines.base import Engine, Progress, R, T, available_cores


@contextlib.contextmanager
def local_threads(workers: int | None = None) -> Iterator[Executor]:
    """A thread pool of ``workers`` (default: all cores) with BLAS pinned to one thread each.

    numpy's BLAS calls and the numba kernels release the GIL, so threads scale; one BLAS
    thread per worker keeps them from oversubscribing the cores.
    """
    count = workers or available_cores()
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
