"""The coarse quantiser of the IVF self-join: k-means centroids, each row's list and each
anchor's probed lists, and the rows sorted by list.

- :func:`train_centroids`: FAISS k-means on a sample of centred rows (the driver);
- :func:`assign_lists`: over row blocks (a map on the engine), each row's list (nearest
  centroid, ties to the smaller list), by GEMM against the centroids and a numba selection;
  :func:`probe_lists`: the same for the ``nprobe`` nearest lists of a block of anchors (the
  join computes them per block, so no ``n × nprobe`` table is held);
- :func:`sorted_lists`: the rows in list order (then label, then row), as one centred copy
  in the work dtype, so a list's members are one contiguous slice: what the join reads
  instead of gathering rows from the (memory-mapped) input.

Keys to centroids are ``‖c‖² − 2 x·c`` (the row's own ``‖x‖²`` ranks nothing), from float32
products in float64; every row and centroid is in the centred space of ``prep``.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
from numba import njit

from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.engines import Engine, Progress
from embedkit.mining.keys import Prepared

#: k-means sample: rows per list (FAISS's own minimum), and rounds. (On the 10⁶-row bench,
#: 24 rows × 8 rounds halve the training but cost ~0.01 of recall at nprobe 32.)
TRAIN_PER_LIST = 39
KMEANS_ITERATIONS = 10


def release_mapped_pages(array: np.ndarray) -> None:
    """Drop this process's resident pages of a read-only memory-mapped ``array``
    (``madvise(MADV_DONTNEED)``); a no-op for any other array.

    Gathering rows by fancy indexing touches pages all over the file, and mapped pages
    count in the process's resident memory until the kernel needs them back; a task
    releases them when done, so a process (or a Dask worker) holds the rows it is
    working on, not the file. The data stay in the page cache: the next read of a
    dropped page is a minor fault, not a disk read.
    """
    mapped: object = array
    while isinstance(mapped, np.ndarray) and not (isinstance(mapped, np.memmap) and mapped.filename):
        mapped = mapped.base
    mapping = getattr(mapped, "_mmap", None)
    if (isinstance(mapped, np.memmap) and getattr(mapped, "mode", None) == "r" and mapping is not None
            and hasattr(mmap, "MADV_DONTNEED")):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map or an unsupported platform: nothing to release
            pass


def release_free_heap() -> None:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``; a no-op
    elsewhere). Blocks freed by numpy between 128 KiB and 32 MiB stay in malloc's arenas
    (its mmap threshold rises to the largest block freed); after a phase that churned
    through many of them, they would count in the resident set of the next phase."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


#: Scattered rows gathered from a memory map between two releases of its pages (each such
#: row maps up to 64 KiB of file around it: 1 024 rows map at most 64 MiB).
GATHER_ROWS = 1024


def gather_rows(prep: Prepared, ids: np.ndarray) -> np.ndarray:
    """Rows ``ids`` of ``prep`` (centred), :data:`GATHER_ROWS` at a time, releasing the
    mapped pages after each chunk (resident file pages stay bounded, however scattered)."""
    out = np.empty((len(ids), prep.x.shape[1]), dtype=prep.x.dtype)
    for start in range(0, len(ids), GATHER_ROWS):
        part = ids[start:start + GATHER_ROWS]
        out[start:start + len(part)] = prep.rows(part)
        release_mapped_pages(prep.x)
    return out


def train_centroids(prep: Prepared, nlist: int, *, seed: int = 0, threads: int | None = None) -> np.ndarray:
    """``nlist`` k-means centroids (FAISS, ``KMEANS_ITERATIONS`` rounds) of ``39·nlist``
    centred rows sampled with ``seed``; in the work dtype, in the centred space."""
    import faiss

    from embedkit.knn import set_threads

    n, dim = prep.x.shape
    nlist = int(max(1, min(nlist, n)))
    sample = min(n, nlist * TRAIN_PER_LIST)
    rows = np.sort(np.random.default_rng([seed, 4099]).choice(n, sample, replace=False))
    data = np.ascontiguousarray(gather_rows(prep, rows), dtype=np.float32)
    if nlist == 1:
        return data.mean(axis=0, keepdims=True).astype(prep.x.dtype)
    set_threads(threads)
    kmeans = faiss.Kmeans(dim, nlist, niter=KMEANS_ITERATIONS, seed=int(seed) & 0x7FFFFFFF, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=TRAIN_PER_LIST + 1)
    kmeans.train(data)
    return np.ascontiguousarray(kmeans.centroids, dtype=prep.x.dtype)


# -- numba kernels ---------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def nearest_lists_tile(scores, centroid_sq, is_anchor, nprobe, assign, probes):  # type: ignore[no-untyped-def]
    """Per row of ``scores = rows · centroidsᵀ``: its list (smallest ``‖c‖² − 2 x·c``, ties to
    the smaller list) into ``assign``, and for anchor rows its ``nprobe`` nearest lists into
    the next rows of ``probes``; returns the probe rows written."""
    n_rows, n_lists = scores.shape
    keys = np.empty(nprobe)
    ids = np.empty(nprobe, dtype=np.int64)
    out = 0
    for r in range(n_rows):
        keys[:] = np.inf
        ids[:] = -1
        worst = np.inf
        for c in range(n_lists):
            v = centroid_sq[c] - 2.0 * scores[r, c]
            if v < worst:  # strict: an equal key keeps the smaller list
                pos = nprobe - 1
                while pos > 0 and keys[pos - 1] > v:
                    keys[pos] = keys[pos - 1]
                    ids[pos] = ids[pos - 1]
                    pos -= 1
                keys[pos] = v
                ids[pos] = c
                worst = keys[nprobe - 1]
        assign[r] = ids[0]
        if is_anchor[r]:
            for t in range(nprobe):
                probes[out, t] = ids[t]
            out += 1
    return out


@njit(nogil=True, cache=True)
def bucket_rows(lists, n_lists, ids):  # type: ignore[no-untyped-def]
    """Counting sort: ``ids[r]`` into bucket ``lists[r, t]`` for every ``t`` (stable, so
    ascending ``ids`` stay ascending per bucket); returns the grouped ids and the offsets."""
    n_rows, per_row = lists.shape
    ptr = np.zeros(n_lists + 1, dtype=np.int64)
    for r in range(n_rows):
        for t in range(per_row):
            ptr[lists[r, t] + 1] += 1
    for b in range(n_lists):
        ptr[b + 1] += ptr[b]
    fill = ptr[:-1].copy()
    out = np.empty(n_rows * per_row, dtype=ids.dtype)
    for r in range(n_rows):
        for t in range(per_row):
            b = lists[r, t]
            out[fill[b]] = ids[r]
            fill[b] += 1
    return out, ptr


# -- step 2: lists and probes ---------------------------------------------------------------


def centroid_terms(centroids: np.ndarray) -> np.ndarray:
    """``‖c‖²`` per centroid, float64 (the centroid half of the keys to lists)."""
    return np.einsum("ij,ij->i", centroids, centroids).astype(np.float64)


def probe_dtype(nlist: int) -> type:
    """The smallest integer type holding list ids."""
    return np.int16 if nlist < 2**15 else np.int32


def probe_lists(rows: np.ndarray, which: np.ndarray, centroids: np.ndarray, centroid_sq: np.ndarray, nprobe: int,
                budget_mib: float = DEFAULT_BUDGET_MIB) -> np.ndarray:
    """The ``nprobe`` nearest lists of each of ``rows[which]`` (centred), nearest first, ties
    to the smaller list; by GEMM against the centroids in chunks within ``budget_mib``."""
    nlist = len(centroids)
    probes = np.empty((len(which), nprobe), dtype=probe_dtype(nlist))
    assign = np.empty(len(which), dtype=np.int32)
    every = np.ones(len(which), dtype=bool)
    step = rows_per_block((nlist + rows.shape[1]) * rows.itemsize, budget_mib)
    for a, b in blocks(len(which), step):
        nearest_lists_tile(rows[which[a:b]] @ centroids.T, centroid_sq, every[a:b], nprobe, assign[a:b],
                           probes[a:b])
    return probes


@dataclass(frozen=True)
class _AssignJob:
    """Shared by every row-block task."""

    prep: Prepared
    centroids: np.ndarray
    centroid_sq: np.ndarray


def _assign_block(job: _AssignJob, bounds: tuple[int, int]) -> np.ndarray:
    """The lists of rows ``bounds``."""
    a, b = bounds
    scores = job.prep.rows(slice(a, b)) @ job.centroids.T
    assign = np.empty(b - a, dtype=np.int32)
    nearest_lists_tile(scores, job.centroid_sq, np.zeros(b - a, dtype=bool), 1, assign,
                       np.empty((0, 1), dtype=probe_dtype(len(job.centroids))))
    release_mapped_pages(job.prep.x)
    return assign


def assign_lists(prep: Prepared, centroids: np.ndarray, runner: Engine, budget_mib: float = DEFAULT_BUDGET_MIB,
                 progress: Progress | None = None) -> np.ndarray:
    """Each row's list (its nearest centroid, ties to the smaller list; int32), over row
    blocks on the engine."""
    n, dim = prep.x.shape
    nlist = len(centroids)
    step = rows_per_block((nlist + dim * 2) * prep.x.itemsize, budget_mib / 4)
    bounds = list(blocks(n, step))
    job = runner.share(_AssignJob(prep, centroids, centroid_terms(centroids)))
    assign = np.empty(n, dtype=np.int32)
    for (a, b), part in zip(bounds, runner.map(_assign_block, job, bounds, weights=[b - a for a, b in bounds],
                                               progress=progress)):
        assign[a:b] = part
    return assign


# -- step 3: the rows in list order ----------------------------------------------------------


@dataclass(frozen=True)
class SortedLists:
    """The rows sorted by (list, label, row): position ``p`` holds row ``ids[p]``, centred, as
    ``rows[p]`` (work dtype), with its label code ``labels[p]`` and key term ``terms[p]``;
    list ``l`` is positions ``ptr[l]:ptr[l + 1]``; ``where[r]`` is row ``r``'s position."""

    rows: np.ndarray
    ids: np.ndarray
    where: np.ndarray
    labels: np.ndarray
    terms: np.ndarray
    ptr: np.ndarray


def sorted_lists(prep: Prepared, codes: np.ndarray, assign: np.ndarray, nlist: int,
                 budget_mib: float = DEFAULT_BUDGET_MIB) -> SortedLists:
    """The list-sorted copy of the rows (one pass over ``prep.x`` in row blocks, each block
    scattered to its positions; the mapped pages are released as the pass goes)."""
    n, dim = prep.x.shape
    id_type = np.int32 if n < 2**31 else np.int64
    ids = np.lexsort((codes, assign)).astype(id_type)  # stable: rows ascending within (list, label)
    where = np.empty(n, dtype=id_type)
    where[ids] = np.arange(n, dtype=id_type)
    ptr = np.zeros(nlist + 1, dtype=np.int64)
    np.cumsum(np.bincount(assign, minlength=nlist), out=ptr[1:])
    rows = np.empty((n, dim), dtype=prep.x.dtype)
    for a, b in blocks(n, rows_per_block(dim * prep.x.itemsize * 2, budget_mib / 4)):
        rows[where[a:b]] = prep.rows(slice(a, b))
    release_mapped_pages(prep.x)
    label_type = np.int32 if codes.max(initial=0) < 2**31 else np.int64
    return SortedLists(rows=rows, ids=ids, where=where, labels=codes[ids].astype(label_type),
                       terms=prep.terms[ids], ptr=ptr)
