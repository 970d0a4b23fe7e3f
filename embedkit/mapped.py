"""Arrays that travel by path: a read-only memory map of a file that pickles as
``(path, offset, dtype, shape)`` and re-opens by memory-map wherever it is unpickled.

This is how work reaches the workers of a distributed engine without carrying the data:
a job holding a :class:`PathArray` pickles to a few hundred bytes, and each worker maps
the file itself, so the pages it reads are shared file cache (``RssFile``), never its own
anonymous memory (``RssAnon``). The file must be visible at the same path on every worker
(the local machine for a ``LocalCluster``, a shared file system for a real cluster).

- :class:`PathArray` is an :class:`numpy.memmap` (slicing, fancy indexing, ufuncs behave
  exactly as on the memory map). Only the *whole* mapping pickles by path; a slice, a view
  or a copy pickles by value, as any array does (tasks carry small slices).
- :class:`LazyRows` is a path-backed matrix read through a per-block transformation (the
  work dtype, and the L2 normalisation of cosine), so a job never holds a normalised copy
  of the matrix: every block is normalised as it is read, with the very arithmetic of
  :func:`embedkit.arrays.l2_normalized` (row by row, so bit for bit the same rows).
- :class:`ShardedArray` is the in-memory concatenation of NPY shard files (what loading a
  folder of NPY shards gives the command); it pickles as a :class:`ShardedRows`, the
  files and row ranges, which maps each shard where it is read.
- :func:`spill` writes an in-memory array into an NPY file of a folder, block by block,
  and returns its :class:`PathArray`.

Reading columns tile after tile through a mapping would leave every page it touched
mapped in the process (resident set grows to the file's size, which a Dask worker's
``--memory-limit`` counts). A :class:`PathArray` therefore drops its mapped pages
(``madvise(MADV_DONTNEED)``: they stay in the kernel's page cache, a later read faults
them back in) once more than :data:`RESIDENT_WINDOW` bytes have been read through it.

>>> import os, pickle, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
>>> np.save(path, np.arange(12, dtype=np.float32).reshape(4, 3))
>>> x = open_npy(path)
>>> len(pickle.dumps(x)) < 400, pickle.loads(pickle.dumps(x))[1:3].tolist()
(True, [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
"""

from __future__ import annotations

import mmap
import os
import uuid
from typing import Any

import numpy as np

from embedkit.arrays import l2_normalized, work_dtype

#: Bytes read through one mapping before its pages are dropped from this process.
RESIDENT_WINDOW = 16 << 20
#: Bytes the kernel maps around a faulting page of a file (Linux ``fault_around_bytes``).
FAULT_AROUND = 64 << 10


class PathArray(np.memmap):
    """A read-only memory map that pickles by path (see the module docstring).

    Build one with :func:`open_npy` or :func:`path_backed`; never call the constructor."""

    _path_source: tuple[str, str, tuple[int, ...], int] | None = None
    _touched: int = 0

    _root: PathArray | None = None

    def __array_finalize__(self, obj: Any) -> None:
        super().__array_finalize__(obj)
        self._path_source = None  # views, slices, results: by value (the mapping alone goes by path)
        self._touched = 0
        # A view of the mapping (x[first:], x.T) counts its reads against the whole map's window.
        root = getattr(obj, "_root", None)
        if root is None and isinstance(obj, PathArray) and obj._path_source is not None:
            root = obj
        self._root = root if getattr(self, "_mmap", None) is not None else None

    @property
    def path_source(self) -> tuple[str, str, tuple[int, ...], int] | None:
        """``(path, dtype, shape, offset)`` of the whole mapping; ``None`` for a view of it."""
        return self._path_source

    def __reduce_ex__(self, protocol: Any) -> Any:  # ndarray defines __reduce_ex__: override that
        if self._path_source is not None:
            return _reopen, self._path_source
        return np.asarray(self).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # As numpy.memmap does for itself: results not backed by the mapping are plain arrays.
        out = super().__array_wrap__(arr, context, return_scalar)
        if out is self or not isinstance(out, PathArray) or out._mmap is not None:
            return out
        return out[()] if return_scalar else out.view(np.ndarray)

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        copied = isinstance(out, PathArray) and out._mmap is None
        if copied:  # a copy (fancy indexing): a plain array, as numpy.memmap gives
            out = out.view(np.ndarray)
        owner = self if self._path_source is not None else self._root
        if owner is not None and isinstance(out, np.ndarray):
            # Scattered rows map more than they read: a page fault maps FAULT_AROUND bytes.
            owner._touched += max(out.nbytes, len(out) * FAULT_AROUND) if copied and out.ndim else out.nbytes
            if owner._touched > RESIDENT_WINDOW:
                owner.drop_pages()
                owner._touched = out.nbytes
        return out

    def drop_pages(self) -> None:
        """Unmap the pages this process has read (they stay in the page cache; reads fault
        them back in): bounds the resident set a scan over the file leaves behind."""
        mapping = getattr(self, "_mmap", None)
        if mapping is not None and hasattr(mapping, "madvise"):
            try:
                mapping.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover - a closed or exotic mapping
                pass


def _reopen(path: str, dtype: str, shape: tuple[int, ...], offset: int) -> PathArray:
    """Unpickling: map ``path`` again (a file shorter than the mapping needs is an error)."""
    from embedkit.errors import InputError

    needed = offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot be read on this worker ({exc.strerror or exc}); data passed by "
                         "path must be on storage every worker sees at the same path") from None
    if size < needed:
        raise InputError(f"{path}: holds {size:,} bytes on this worker but {needed:,} are needed "
                         "(the file changed, or the worker sees another file at this path)")
    return _mapped(path, np.dtype(dtype), shape, offset)


def _mapped(path: str, dtype: np.dtype, shape: tuple[int, ...], offset: int) -> PathArray:
    array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="C").view(PathArray)
    array._path_source = (path, dtype.str, tuple(int(n) for n in shape), int(offset))
    return array


def path_backed(array: np.ndarray) -> np.ndarray:
    """``array`` as a :class:`PathArray` when it is a whole, C-ordered, read-only memory map
    of a named file; otherwise ``array`` unchanged."""
    if isinstance(array, PathArray) or not isinstance(array, np.memmap):
        return array
    path = getattr(array, "filename", None)
    mapping = getattr(array, "_mmap", None)
    if not path or mapping is None or array.mode != "r" or not array.flags.c_contiguous or array.size == 0:
        return array
    base = int(getattr(array, "offset", 0))
    start = base - base % mmap.ALLOCATIONGRANULARITY
    # The whole map, not a view into it: it begins at the mapping's first byte past ``offset``.
    view_start = array.__array_interface__["data"][0]
    mapped_start = np.frombuffer(mapping, dtype=np.uint8, count=1).__array_interface__["data"][0]
    if view_start - mapped_start != base - start or array.nbytes != len(mapping) - (base - start):
        return array
    return _mapped(os.path.abspath(path), array.dtype, array.shape, base)


def open_npy(path: str) -> PathArray:
    """An NPY file (native byte order, C order) as a :class:`PathArray`."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    out = path_backed(array)
    if not isinstance(out, PathArray):
        raise ValueError(f"{path}: not a C-ordered, native-endian NPY matrix that can be mapped by path")
    return out


def is_path_backed(array: object) -> bool:
    """True when ``array`` pickles by path: a whole :class:`PathArray` or
    :class:`ShardedArray`, a :class:`ShardedRows` or a :class:`LazyRows`."""
    if isinstance(array, (LazyRows, ShardedRows)):
        return True
    if isinstance(array, ShardedArray):
        return array.shard_files is not None
    return isinstance(array, PathArray) and array.path_source is not None


class _RowMatrix:
    """What a row matrix that is not an ndarray shows the tile code: ``dtype``, ``shape``
    (rows, columns) and, derived from them, ``itemsize``, ``ndim`` and ``len``."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.shape[0]


class ShardedRows(_RowMatrix):
    """NPY shard files read as one ``(n, d)`` matrix, each file memory-mapped when first read:
    what a :class:`ShardedArray` becomes where it is unpickled (a worker).

    Supports what tile tasks do: ``len``, ``shape``, ``dtype``, ``itemsize``, a slice of rows
    (a view of the mapping when it lies in one file, else a copy) and fancy indexing of rows.
    """

    def __init__(self, files: tuple[tuple[str, int, int], ...], dtype: str, shape: tuple[int, int]) -> None:
        self.files = tuple(files)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self._starts = np.array([start for _, start, _ in self.files] + [self.shape[0]], dtype=np.int64)
        self._maps: list[PathArray | None] = [None] * len(self.files)

    def _file(self, k: int) -> PathArray:
        mapped = self._maps[k]
        if mapped is None:
            from embedkit.errors import InputError

            path, start, stop = self.files[k]
            try:
                mapped = open_npy(path)
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: cannot be mapped on this worker ({exc}); shard files must be on "
                                 "storage every worker sees at the same path") from None
            if mapped.shape != (stop - start, self.shape[1]) or mapped.dtype != self.dtype:
                raise InputError(f"{path}: holds {mapped.shape} {mapped.dtype} on this worker, but the dataset "
                                 f"read {(stop - start, self.shape[1])} {self.dtype} from it (the file changed)")
            self._maps[k] = mapped
        return mapped

    def __getitem__(self, index: Any) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, slice) and index.step in (None, 1):
            start, stop, _ = index.indices(n)
            pieces = []
            k = int(np.searchsorted(self._starts, start, side="right")) - 1
            while start < stop:
                first, last = int(self._starts[k]), int(self._starts[k + 1])
                take = min(stop, last)
                pieces.append(self._file(k)[start - first:take - first])
                start = take
                k += 1
            if len(pieces) == 1:
                return pieces[0]
            return np.concatenate(pieces) if pieces else np.empty((0, self.shape[1]), self.dtype)
        ids = np.arange(n)[index] if isinstance(index, slice) else np.asarray(index)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        if ids.ndim != 1:
            raise IndexError("ShardedRows supports row selections only (a slice or an array of rows)")
        ids = np.where(ids < 0, ids + n, ids).astype(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        out = np.empty((len(ids), self.shape[1]), dtype=self.dtype)
        which = np.searchsorted(self._starts, ids, side="right") - 1
        for k in np.unique(which):
            chosen = which == k
            out[chosen] = self._file(int(k))[ids[chosen] - self._starts[k]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return np.array(out, dtype=dtype, copy=True) if dtype is not None else np.array(out, copy=True)

    def __reduce__(self) -> Any:
        return ShardedRows, (self.files, self.dtype.str, self.shape)

    @property
    def filename(self) -> str:
        return f"{len(self.files)} NPY shards"


class ShardedArray(np.ndarray):
    """The rows of NPY shard files concatenated in memory (as a folder of shards loads), which
    remembers where they came from: the whole array pickles as a :class:`ShardedRows` (the
    files and their row ranges), so a worker maps the shards instead of receiving the rows.
    Views and results are plain arrays (and pickle by value)."""

    shard_files: tuple[tuple[str, int, int], ...] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.shard_files = None

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        out = super().__array_wrap__(arr, context, return_scalar)
        if isinstance(out, ShardedArray) and out is not self:
            return out[()] if return_scalar else out.view(np.ndarray)
        return out

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        return out.view(np.ndarray) if isinstance(out, ShardedArray) else out

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.shard_files is not None:
            return ShardedRows, (self.shard_files, self.dtype.str, tuple(self.shape))
        return np.asarray(self).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


def sharded_array(rows: np.ndarray, files: list[tuple[str, int, int]]) -> np.ndarray:
    """``rows`` (the concatenation of NPY shard ``files``, each ``(path, first row, end row)``)
    as a :class:`ShardedArray`; unchanged unless it is a C-ordered native float matrix."""
    if rows.ndim != 2 or not rows.flags.c_contiguous or not rows.dtype.isnative or not files:
        return rows
    out = rows.view(ShardedArray)
    out.shard_files = tuple((os.path.abspath(path), int(a), int(b)) for path, a, b in files)
    return out


class LazyRows(_RowMatrix):
    """Rows of a :class:`PathArray` read as the work dtype, L2-normalised when ``normalise``.

    Behaves as a read-only ``(n, d)`` matrix for what tile tasks do: ``len``, ``shape``,
    ``dtype``, ``itemsize``, slices and fancy indexing of rows (each returning a new
    C-contiguous array). Pickles as its source, i.e. by path. ``np.asarray`` materialises it
    (avoid that in tasks: it is the copy this class exists to avoid).
    """

    def __init__(self, source: Any, normalise: bool) -> None:
        if source.ndim != 2:
            raise ValueError(f"LazyRows needs a matrix; got shape {source.shape}")
        self.source = source
        self.normalise = normalise
        self.dtype = work_dtype(source.dtype)
        self.shape = tuple(source.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        block = self.source[index]
        if np.ndim(block) != 2:
            raise IndexError("LazyRows supports row selections only (a slice or an array of rows)")
        if self.normalise:
            return l2_normalized(block)
        return np.array(block, dtype=self.dtype, order="C", copy=True)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self) -> Any:
        return LazyRows, (self.source, self.normalise)

    def __repr__(self) -> str:
        what = "normalised " if self.normalise else ""
        return f"LazyRows({what}{self.dtype} {self.shape[0]}x{self.shape[1]} of {getattr(self.source, 'filename', '?')})"


def work_rows(embeddings: Any, *, normalise: bool = False) -> np.ndarray | LazyRows | None:
    """The path-backed matrix a job should hold for ``embeddings`` in the work dtype
    (L2-normalised rows when ``normalise``): the :class:`PathArray` (or
    :class:`ShardedArray`) itself when no transformation is needed, a :class:`LazyRows` over
    it otherwise; ``None`` when ``embeddings`` is not path-backed (the caller prepares an
    in-memory copy as before)."""
    if not (isinstance(embeddings, (PathArray, ShardedArray)) and is_path_backed(embeddings)
            and embeddings.ndim == 2):
        return None
    if not normalise and embeddings.dtype == work_dtype(embeddings.dtype):
        return embeddings
    return LazyRows(embeddings, normalise)


def spill(array: np.ndarray, folder: str, *, budget_mib: float = 32.0) -> PathArray:
    """Write ``array`` (C order) into a new NPY file in ``folder``, ``budget_mib`` at a time,
    and map it by path. The file is written under a temporary name and renamed whole."""
    from numpy.lib.format import open_memmap

    data = np.asarray(array) if not isinstance(array, LazyRows) else array
    name = os.path.join(os.path.abspath(folder), f"embedkit-spill-{uuid.uuid4().hex}.npy")
    partial = f"{name}.partial"
    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype).newbyteorder("=")
    try:
        out = open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
        if len(shape) and shape[0]:
            row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
            step = max(1, int(budget_mib * 2**20) // row_bytes)
            for start in range(0, shape[0], step):
                out[start:start + step] = data[start:start + step]
        out.flush()
        del out
        os.replace(partial, name)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return open_npy(name)
