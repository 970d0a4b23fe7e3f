"""The Dask engine: the same tasks as :class:`embedkit.engines.local.LocalEngine`, on a Dask cluster.

Install with ``pip install 'embedkit[dask]'``. ``scheduler`` (``tcp://HOST:PORT``) joins a
running cluster; without one, a ``LocalCluster`` is started here and shut down on
:meth:`close`.

Data travel by path, not by value. A job's matrix mapped from a file
(:class:`embedkit.mapped.PathArray`, what loading an NPY file gives;
:class:`embedkit.mapped.ShardedArray`, what loading a folder of NPY shards gives) pickles as
its path(s), and each worker memory-maps the file itself. Any other large array of a job (more than
:data:`SPILL_BYTES`: a matrix read from Parquet, Arrow, NPZ or stdin, label codes of a
huge set...) is written once to an NPY file in a *spill folder*
every worker can read, and travels by path too: ``parts_dir`` when given (it must be on
storage every worker sees), else a temporary folder on this host when every worker is
found to see it (a ``LocalCluster``, or workers on this host); both removed on
:meth:`close`. Only when no worker-visible folder exists is the job scattered by value.
The job itself (small once its arrays go by path) is scattered once to every worker
(``broadcast=True``), so tasks carry only their item. Results are yielded in item order, whatever order workers
finish in, so outputs and float64 sums are identical to the local engine's. A task whose
worker dies is re-run elsewhere by the scheduler; its result is used exactly once. With
``parts_dir`` (a folder every worker and the driver can see), each task writes its result
to its own part file atomically and the driver merges the parts in task order; without
it, results come back over Dask's own connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import pickle
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from embedkit.engines.base import Engine, Progress, available_cores
from embedkit.errors import OptionError

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "EMBEDKIT_SCHEDULER"
_DASK_LOG = logging.getLogger("distributed")
INSTALL_HINT = "pip install 'embedkit[dask]'"
#: In-memory arrays of a job larger than this go to workers through a spill file, by path.
SPILL_BYTES = 16 << 20


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
            except (OSError, TimeoutError, ValueError, TypeError) as exc:  # ValueError: a malformed address
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise OptionError(f"cannot reach the Dask scheduler at {address}: {detail}") from None
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
        self._spill_dir: str | None = None  # decided at the first large array
        self._spill_checked = False
        self._owned_spill_dir: str | None = None
        self._spilled: dict[int, tuple[weakref.ref[Any], Any]] = {}
        self._spill_files: list[str] = []

    def share(self, value: Any) -> Any:
        """Scatter ``value`` once to every worker, its large arrays by path (see the module
        docstring)."""
        return self.client.scatter(self.by_path(value), broadcast=True, hash=False)

    def by_path(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every in-memory array above :data:`SPILL_BYTES` (in it, or in the
        dataclasses and tuples it holds) replaced by a path-backed copy in the spill folder;
        unchanged when there is nothing to spill or no folder every worker sees."""
        import numpy as np

        from embedkit.mapped import LazyRows, is_path_backed

        if isinstance(value, LazyRows) or is_path_backed(value) or depth > 4:
            return value
        if isinstance(value, np.ndarray):
            if value.nbytes <= SPILL_BYTES or value.dtype.hasobject or value.size == 0:
                return value
            return self._spill(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {}
            for f in dataclasses.fields(value):
                if not f.init:
                    continue
                old = getattr(value, f.name)
                new = self.by_path(old, depth + 1)
                if new is not old:
                    changes[f.name] = new
            return dataclasses.replace(value, **changes) if changes else value
        if type(value) is tuple:
            items = tuple(self.by_path(v, depth + 1) for v in value)
            return items if any(a is not b for a, b in zip(items, value)) else value
        return value

    def _spill(self, array: Any) -> Any:
        from embedkit.mapped import spill

        cached = self._spilled.get(id(array))
        if cached is not None and cached[0]() is array:
            return cached[1]
        folder = self._spill_folder()
        if folder is None:
            return array
        mapped = spill(array, folder)
        self._spill_files.append(mapped.filename)
        try:
            self._spilled[id(array)] = (weakref.ref(array), mapped)
        except TypeError:  # pragma: no cover - an array type without weak references
            pass
        return mapped

    def _spill_folder(self) -> str | None:
        """``parts_dir``, else a temporary folder when every worker sees it, else ``None``."""
        if self._spill_checked:
            return self._spill_dir
        self._spill_checked = True
        if self.parts_dir is not None:
            self._spill_dir = self.parts_dir
            return self._spill_dir
        folder = tempfile.mkdtemp(prefix="embedkit-spill-")
        probe = os.path.join(folder, "probe")
        with open(probe, "w") as handle:
            handle.write(folder)
        try:
            seen = self.client.run(_reads, probe)
        except Exception:  # noqa: BLE001 - any failure to ask: pass data by value, as before
            seen = {}
        os.unlink(probe)
        if seen and all(text == folder for text in seen.values()):
            self._spill_dir = self._owned_spill_dir = folder
        else:
            os.rmdir(folder)
        return self._spill_dir

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
        self.drop_spills()
        if self._owned_spill_dir is not None:
            shutil.rmtree(self._owned_spill_dir, ignore_errors=True)

    def drop_spills(self) -> None:
        """Remove the spill files written so far (jobs shared before must have finished)."""
        self._spilled.clear()
        for path in self._spill_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._spill_files.clear()


def _reads(path: str) -> str | None:
    """On a worker: the text of ``path``, or ``None`` when it cannot see the file."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


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
