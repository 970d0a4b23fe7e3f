"""The engine seam: algorithms submit independent tasks and merge results in item order,
so the answer does not depend on which worker ran what or when. Implementations:
:mod:`embedkit.engines.local` (threads here) and :mod:`embedkit.engines.dask`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Engine:
    """Runs independent tasks ``task(shared, item)`` and yields their results in item order.

    ``shared`` is one large read-only value (embeddings, labels) that :meth:`share` makes
    available to every worker once, instead of with every task. Arrays mapped from files
    (:mod:`embedkit.mapped`) in it travel by path: each worker maps the file itself. Implementations: the
    in-process :class:`LocalEngine` and :class:`embedkit.engines.dask.DaskEngine`.
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


