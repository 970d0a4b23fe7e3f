"""Exact query -> corpus ranking, blocked on both axes: a running top-k per query.

The corpus is read in blocks (only a block at a time becomes a float32 copy, so a
memory-mapped corpus stays on disk); each block is scored against blocks of queries
in BLAS tiles (``Q_b · C_bᵀ``, float32) that a numba kernel folds into per-query heaps of
the ``k`` best rows; the blocks' lists are merged into the running top-k. No queries ×
corpus matrix is ever held. Query blocks run as tasks on the engine (threads, or Dask).

Scores:

- ``cosine``: ``⟨q/‖q‖, c/‖c‖⟩`` (zero rows have cosine 0), descending;
- ``dot``: ``⟨q, c⟩``, descending;
- ``euclidean``: ``‖q − c‖₂`` from ``‖q‖² + ‖c‖² − 2⟨q, c⟩`` in float32 (clipped at 0,
  then the root), ascending.

Ties: rows with equal scores rank by ascending corpus row. The order is a total order
on (score, row), so the result does not depend on the block sizes or the engine for
the scores as computed; scores are float32 BLAS products, so rows whose true scores
differ by less than float32 rounding may order either way.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

from embedkit.arrays import mapped_file_guard
from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.distances import RANKING_METRICS, RankingMetric
from embedkit.engines import available_cores
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.mapped import is_path_backed

if TYPE_CHECKING:
    from embedkit.knn import Neighbours

__all__ = ["RANKING_METRICS", "RankingMetric", "prepare_rows", "top_k"]
#: Heap sentinel: an empty slot ranks after every corpus row.
_NO_ROW = np.iinfo(np.int64).max
#: Every score tile is exactly QUERY_TILE × CORPUS_TILE (edges zero-padded) and aligned to
#: multiples of these sizes: BLAS rounds an entry the same way only at the same place of a
#: tile of the same shape, so a fixed grid makes scores independent of budget and engine.
QUERY_TILE = 256
CORPUS_TILE = 1024
#: Most query tiles per task (a block of queries searched against one corpus block).
MAX_TILES_PER_TASK = 8


def prepare_rows(rows: np.ndarray, metric: RankingMetric,
                 centre: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A float32 C-contiguous copy (L2-normalised for cosine; zero rows stay zero; for
    Euclidean, minus ``centre`` taken in float64) and, for Euclidean, the float32 squared norms.

    Centring keeps ``‖q‖² + ‖c‖² − 2q·c`` accurate in float32 when all rows share a large
    offset (distances do not change under a common translation).
    """
    if metric == "euclidean" and centre is not None:
        out = np.ascontiguousarray(np.subtract(rows, centre, dtype=np.float64), dtype=np.float32)
    else:
        out = np.array(rows, dtype=np.float32, order="C", copy=True)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64)).astype(np.float32)[:, None]
        np.divide(out, norms, out=out, where=norms > 0)
    squared = np.einsum("ij,ij->i", out, out) if metric == "euclidean" else None
    return out, squared


def ranking_centre(corpus: np.ndarray, *, budget_mib: float = DEFAULT_BUDGET_MIB) -> np.ndarray:
    """The corpus mean row rounded to a power-of-two grid at the scale of its spread.

    Subtracting it removes any large common offset (what ruins the float32 expansion), and
    the rounding keeps data on a coarse grid exact: integer-valued rows stay integers, so
    equal distances stay equal and ties still rank by row.

    >>> ranking_centre(np.array([[1000.0, 1.0], [1002.0, 3.0]])).tolist()
    [1001.0, 2.0]
    """
    total = np.zeros(corpus.shape[1], dtype=np.float64)
    squares = np.zeros(corpus.shape[1], dtype=np.float64)
    for start, stop in blocks(len(corpus), rows_per_block(corpus.shape[1] * 8, budget_mib)):
        block = np.asarray(corpus[start:stop], dtype=np.float64)
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    n = max(1, len(corpus))
    mean = total / n
    spread = float(np.sqrt(np.mean(np.maximum(squares / n - mean * mean, 0.0))))
    grid = 2.0 ** math.floor(math.log2(spread)) if spread > 0 and math.isfinite(spread) else 1.0
    return np.round(mean / grid) * grid


@dataclass(frozen=True)
class _BlockJob:
    """One corpus block and every query (prepared); shared with the workers once per block."""

    token: str
    queries: np.ndarray
    query_sq: np.ndarray | None
    corpus: np.ndarray
    corpus_sq: np.ndarray | None
    first_row: int
    k: int
    total_rows: int
    distance: bool
    #: Set when the inputs are files mapped by path (embedkit.mapped): ``queries`` and/or
    #: ``corpus`` are then the raw mapped matrices, and each task prepares its own query rows
    #: and this block's corpus rows ``first_row:first_row + block_rows`` (row-wise arithmetic,
    #: so the same float32 rows as preparing them here).
    metric: RankingMetric | None = None
    centre: np.ndarray | None = None
    raw_queries: bool = False
    raw_corpus: bool = False
    block_rows: int = 0
    grid: tuple[int, int] = (QUERY_TILE, CORPUS_TILE)


def _rank_block(job: _BlockJob, bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows of this corpus block for queries ``bounds``: ``(keys, rows)``, each
    row sorted by (key descending, corpus row ascending); empty slots have row ``int64 max``."""
    from embedkit.kernels import topk_tile

    start, stop = bounds
    width = min(job.k, job.total_rows)
    corpus, corpus_sq_all = job.corpus, job.corpus_sq
    all_queries, all_query_sq, offset = job.queries, job.query_sq, 0
    if job.raw_corpus:  # mapped by path: prepare this block's rows here
        assert job.metric is not None
        corpus, corpus_sq_all = prepare_rows(job.corpus[job.first_row:job.first_row + job.block_rows], job.metric,
                                             job.centre)
    if job.raw_queries:
        assert job.metric is not None
        all_queries, all_query_sq = prepare_rows(job.queries[start:stop], job.metric, job.centre)
        offset = start
    keys = np.full((stop - start, width), -np.inf, dtype=np.float32)
    rows = np.full((stop - start, width), _NO_ROW, dtype=np.int64)
    empty = np.zeros(0, np.float32)
    # One tile buffer per task: a fresh 1 MiB array per tile would be mapped and faulted in each time.
    query_tile, corpus_tile = job.grid
    tile = np.empty((query_tile, corpus_tile), dtype=np.float32)
    with _blas_controller().limit(limits=1, user_api="blas"):  # one core per task (also: fixed rounding)
        for qa, qb in blocks(stop - start, query_tile):
            queries = _padded(all_queries[start - offset + qa:start - offset + qb], query_tile)
            query_sq = all_query_sq[start - offset + qa:start - offset + qb] if all_query_sq is not None else empty
            for lo, hi in blocks(len(corpus), corpus_tile):
                np.matmul(queries, _padded(corpus[lo:hi], corpus_tile).T, out=tile)
                corpus_sq = corpus_sq_all[lo:hi] if corpus_sq_all is not None else empty
                topk_tile(tile[: qb - qa, : hi - lo], job.first_row + lo, query_sq, corpus_sq, job.distance,
                          keys[qa:qb], rows[qa:qb])
    return _sorted(keys, rows)


_CONTROLLER: list[ThreadpoolController] = []


def _blas_controller() -> ThreadpoolController:
    """This process's thread-pool controller (finding the BLAS libraries takes ~1 ms; once)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _padded(rows: np.ndarray, size: int) -> np.ndarray:
    """``rows`` with zero rows appended up to ``size`` (a full tile)."""
    if len(rows) == size:
        return rows
    out = np.zeros((size, rows.shape[1]), dtype=rows.dtype)
    out[: len(rows)] = rows
    return out


def _sorted(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((rows, -keys), axis=1) if keys.shape[1] else np.zeros(keys.shape, np.int64)
    return np.take_along_axis(keys, order, axis=1), np.take_along_axis(rows, order, axis=1)


def _merge(keys: np.ndarray, rows: np.ndarray, new_keys: np.ndarray, new_rows: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k of two ranked lists per query, in the same (key desc, row asc) order."""
    both_keys, both_rows = _sorted(np.concatenate([keys, new_keys], axis=1), np.concatenate([rows, new_rows], axis=1))
    return both_keys[:, :k], both_rows[:, :k]


def top_k(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    *,
    metric: RankingMetric = "cosine",
    execution: Execution = Execution(),
    grid: tuple[int, int] = (QUERY_TILE, CORPUS_TILE),
) -> Neighbours:
    """The ``k`` best corpus rows of every query, exactly.

    Parameters
    ----------
    queries : (q, d) array; corpus : (n, d) array (may be a memory map; only blocks of it
        are copied). Any float dtype; scores are computed in float32.
    k : rows per query (>= 1). With ``k > n`` the lists are padded.
    metric : ``cosine`` or ``dot`` (similarity, descending) or ``euclidean`` (distance,
        ascending). Ties rank by ascending corpus row.
    execution : where the query blocks run (default: threads on every core); its budget
        bounds one corpus block's float32 copy (rounded to whole tiles of ``grid[1]`` rows);
        its progress is called as ``progress(done, total)`` in units of corpus rows × queries
        / corpus rows.
    grid : ``(query rows, corpus rows)`` of every score tile (float32, one per task). The
        scores, and so the ties, are those of this grid.

    Returns
    -------
    Neighbours with ``indices`` (q, k) int64 corpus rows (``-1`` pads when ``k > n``) and
    ``values`` (q, k) float32 scores (NaN pads).

    >>> c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> top_k(np.array([[1.0, 0.1]]), c, 2, metric="dot").indices.tolist()
    [[0, 2]]
    """
    from embedkit.knn import Neighbours  # a twin of the FAISS results (FAISS imported lazily)

    if metric not in RANKING_METRICS:
        raise OptionError(f"unknown metric {metric!r}; expected one of {', '.join(RANKING_METRICS)}")
    if k < 1:
        raise OptionError(f"k must be >= 1; got {k}")
    if queries.ndim != 2 or corpus.ndim != 2:
        raise InputError(f"queries and corpus must be matrices; got shapes {queries.shape} and {corpus.shape}")
    if queries.shape[1] != corpus.shape[1]:
        raise InputError(f"queries have {queries.shape[1]} dimensions but the corpus has {corpus.shape[1]}")
    n_queries, dim = queries.shape
    n_corpus = corpus.shape[0]
    width = min(k, n_corpus)
    keys = np.full((n_queries, width), -np.inf, dtype=np.float32)
    rows = np.full((n_queries, width), _NO_ROW, dtype=np.int64)
    if n_queries and width:
        still_whole = mapped_file_guard(corpus)
        budget_mib, progress, runner = execution.budget_mib, execution.progress, execution.engine
        query_tile, corpus_tile = grid
        centre = ranking_centre(corpus, budget_mib=budget_mib) if metric == "euclidean" else None
        # On a distributed engine, files mapped by path (embedkit.mapped) go to the tasks as
        # they are and each task prepares the rows it reads; otherwise rows are prepared here.
        raw_queries = runner.distributed and is_path_backed(queries)
        raw_corpus = runner.distributed and is_path_backed(corpus)
        prepared, query_sq = (queries, None) if raw_queries else prepare_rows(queries, metric, centre)
        # Tasks: whole query tiles, at most MAX_TILES_PER_TASK, about 4 tasks per core (balance).
        tiles = math.ceil(n_queries / query_tile)
        per_task = query_tile * max(1, min(MAX_TILES_PER_TASK, tiles // (4 * available_cores())))
        query_blocks = list(blocks(n_queries, per_task))
        corpus_rows = corpus_tile * max(1, rows_per_block(dim * 4 + 8, budget_mib) // corpus_tile)
        for start, stop in blocks(n_corpus, corpus_rows):
            still_whole()  # a corpus file truncated under us: one error line, not SIGBUS
            block, block_sq = (corpus, None) if raw_corpus else prepare_rows(corpus[start:stop], metric, centre)
            job = _BlockJob(uuid.uuid4().hex, prepared, query_sq, block, block_sq, start, k, n_corpus,
                            metric == "euclidean", metric, centre, raw_queries, raw_corpus, stop - start, grid)
            step = (lambda done, total, s=start, b=stop - start: progress(s * n_queries + done * b, n_corpus * n_queries)) \
                if progress is not None else None
            results = runner.map(_rank_block, runner.share(job), query_blocks,
                                 weights=[b - a for a, b in query_blocks], progress=step)
            for (a, b), (block_keys, block_rows) in zip(query_blocks, results):
                keys[a:b], rows[a:b] = _merge(keys[a:b], rows[a:b], block_keys, block_rows, width)
    indices = np.where(rows == _NO_ROW, -1, rows)
    if metric == "euclidean":
        values = np.sqrt(np.maximum(-keys, 0.0, dtype=np.float32))
    else:
        values = keys
    values = np.where(indices < 0, np.float32(np.nan), values).astype(np.float32)
    if width < k:  # k larger than the corpus: pad
        indices = np.concatenate([indices, np.full((n_queries, k - width), -1, np.int64)], axis=1)
        values = np.concatenate([values, np.full((n_queries, k - width), np.nan, np.float32)], axis=1)
    return Neighbours(indices, values, metric)  # type: ignore[arg-type]
