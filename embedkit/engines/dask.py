"""The Dask engine: the same tasks as :class:`embedkit.engines.local.LocalEngine`, on a Dask cluster.

Install with ``pip install 'embedkit[dask]'``. ``scheduler`` (``tcp://HOST:PORT``) joins a
running cluster; without one, a ``LocalCluster`` is started here and shut down on
:meth:`close`. The shared input is scattered once to every worker (``broadcast=True``), so
tasks carry only their item. Results are yielded in item order, whatever order workers
finish in, so outputs and float64 sums are identical to the local engine's. A task whose
worker dies is re-run elsewhere by the scheduler; its result is used exactly once. With
``parts_dir`` (a folder every worker and the driver can see), each task writes its result
to its own part file atomically and the driver merges the parts in task order; without
it, results come back over Dask's own connections.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pickle
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from embedkit.engines.base import Engine, Progress, available_cores
from embedkit.errors import OptionError

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "EMBEDKIT_SCHEDULER"
_DASK_LOG = logging.getLogger("distributed")
INSTALL_HINT = "pip install 'embedkit[dask]'"


class DaskEngine(Engine):
    """Tasks on a Dask cluster: an existing one at ``scheduler``, or a local one of ``workers``
    single-threaded worker processes (default: one per core)."""

    name = "dask"
    distributed = True

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None, retries: int = 3,
                 parts_dir: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise OptionError(f"--engine dask needs Dask: {INSTALL_HINT}") from None
        if parts_dir is not None and not os.path.isdir(parts_dir):
            raise OptionError(f"--parts-dir {parts_dir}: no such folder (it must exist and be visible to every worker)")
        self.retries = retries
        self.parts_dir = parts_dir
        self.cluster: Any = None
        address = scheduler or os.environ.get(SCHEDULER_ENV) or None
        if address:
            try:
                self.client = Client(address, timeout="15s")
            except (OSError, TimeoutError) as exc:
                raise OptionError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            # The scheduler runs in this process: keep its INFO chatter off the command's stderr.
            self._log_level = _DASK_LOG.level
            _DASK_LOG.setLevel(logging.ERROR)
            self.cluster = LocalCluster(
                n_workers=workers or available_cores(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never collide with a running cluster
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        self.address = self.client.scheduler.address

    def share(self, value: Any) -> Any:
        return self.client.scatter(value, broadcast=True, hash=False)

    def map(
        self,
        task: Callable[[Any, T], R],
        shared: Any,
        items: Sequence[T],
        *,
        weights: list[int] | None = None,
        progress: Progress | None = None,
    ) -> Iterator[R]:
        from distributed import as_completed

        run = uuid.uuid4().hex  # keys unique to this call: never reuse an earlier call's result
        if self.parts_dir is None:
            futures = [
                self.client.submit(task, shared, item, pure=False, retries=self.retries,
                                   key=f"embedkit-{task.__name__}-{run}-{k}")
                for k, item in enumerate(items)
            ]
        else:
            futures = [
                self.client.submit(store_part, task, shared, item, os.path.join(self.parts_dir, f"{run}-{k:06d}.part"),
                                   pure=False, retries=self.retries, key=f"embedkit-{task.__name__}-{run}-{k}")
                for k, item in enumerate(items)
            ]
        position = {future.key: k for k, future in enumerate(futures)}
        total = sum(weights) if weights is not None else len(futures)
        done = 0
        ready: dict[int, R] = {}
        emitted = 0
        try:
            for future in as_completed(futures):
                k = position[future.key]
                ready[k] = future.result() if self.parts_dir is None else load_part(future.result())
                future.release()  # used once: never recomputed, even if its worker dies now
                done += weights[k] if weights is not None else 1
                if progress is not None:
                    progress(done, total)
                while emitted in ready:
                    yield ready.pop(emitted)
                    emitted += 1
        finally:
            for future in futures:
                future.release()
            if self.parts_dir is not None:
                # What a killed worker left half-written, or a duplicate run wrote late.
                for stray in glob.glob(os.path.join(glob.escape(self.parts_dir), f"{run}-*")):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(stray)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            _DASK_LOG.setLevel(self._log_level)


def store_part(task: Callable[[Any, T], R], shared: Any, item: T, path: str) -> str:
    """Run ``task`` on a worker and write its result to ``path`` atomically (a temporary
    file, then a rename), so a rerun after a lost worker replaces it whole; returns ``path``."""
    result = task(shared, item)
    temporary = f"{path}.{uuid.uuid4().hex}.partial"
    try:
        with open(temporary, "wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def load_part(path: str) -> Any:
    """Read a part file written by :func:`store_part` and remove it (the driver merges parts
    in task order)."""
    with open(path, "rb") as handle:
        result = pickle.load(handle)
    os.unlink(path)
    return result
