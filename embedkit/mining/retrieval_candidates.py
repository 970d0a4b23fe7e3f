"""Candidate lists for query → corpus mining: each mined query's corpus documents ranked by
score (descending, ties by corpus row ascending), with its positives, in ragged (CSR) form.

Search depth. With ``range_max = B`` the candidates are the top ``B + P_max`` documents
(``P_max`` = the most positives any mined query has), exactly as sentence-transformers'
``mine_hard_negatives`` takes ``topk(range_max + max_positives)``. Without it the whole
corpus is eligible: each query's list starts ``range_min + N + P_max + 16`` deep and is
searched again 4× deeper, for the queries whose list held too few survivors, until it
holds ``range_min + N`` survivors or the whole corpus — so the result equals a scan of
every document. The search is :func:`embedkit.ranking.top_k` (exact, blocked over queries
and corpus, never a queries × corpus matrix), or a FAISS IVF / HNSW index whose
candidates are re-scored exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.choices import DEFAULT_BUDGET_MIB
from embedkit.chunking import blocks, rows_per_block
from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.mining.retrieval_select import Selection, SelectionSpec, select_negatives

RetrievalMetric = Literal["cosine", "dot"]
RetrievalIndex = Literal["exact", "ivf", "hnsw"]
#: Extra depth of the first pass without a window, and the growth factor of later passes.
GROW_SLACK = 16
GROW_FACTOR = 4
#: Candidate lists (16 bytes an entry) may take this many times ``budget_mib``.
LIST_BUDGETS = 16


@dataclass(frozen=True)
class SearchSpec:
    """How candidates are found: metric, index, recall audit."""

    metric: RetrievalMetric = "cosine"
    index: RetrievalIndex = "exact"
    check_recall: int = 0
    nlist: int | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Candidates:
    """Ranked candidate lists of the mined queries, and their positives (ragged, CSR).

    Query i (row ``query_rows[i]`` of the queries) has the list
    ``rows[list_ptr[i]:list_ptr[i+1]]`` / ``scores[...]``: its top ``depth[i]`` corpus
    documents, score descending, ties by row ascending. Lists have their own lengths, so one
    query that needs a deep list does not widen the others. Positives of query i are
    ``pos_rows[pos_ptr[i]:pos_ptr[i+1]]`` with their exact scores and relevance.
    ``positive_similarity`` (aligned with ``rows``) is each candidate's largest similarity to a
    positive of its query, when computed. ``window`` is the ``range_max + P_max`` depth the
    lists were cut at, or ``None`` (grown per query).
    """

    query_rows: np.ndarray
    list_ptr: np.ndarray
    rows: np.ndarray
    scores: np.ndarray
    depth: np.ndarray
    pos_ptr: np.ndarray
    pos_rows: np.ndarray
    pos_scores: np.ndarray
    pos_relevance: np.ndarray
    corpus_rows: int
    metric: RetrievalMetric
    window: int | None = None
    positive_similarity: np.ndarray | None = None
    approximate: bool = False

    @property
    def queries(self) -> int:
        return int(len(self.query_rows))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.list_ptr)

    @property
    def positives_per_query(self) -> np.ndarray:
        return np.diff(self.pos_ptr)

    @property
    def p_max(self) -> int:
        return int(self.positives_per_query.max()) if self.queries else 0

    def owners(self) -> tuple[np.ndarray, np.ndarray]:
        """For every list entry: its query index and its 0-based position in that list."""
        owner = np.repeat(np.arange(self.queries, dtype=np.int64), self.lengths)
        return owner, np.arange(len(self.rows), dtype=np.int64) - self.list_ptr[:-1][owner]

    def lowest_positive(self) -> np.ndarray:
        """``p``: each query's lowest positive score (float64)."""
        if not self.queries:
            return np.zeros(0)
        return np.minimum.reduceat(self.pos_scores.astype(np.float64), self.pos_ptr[:-1])

    def is_positive(self) -> np.ndarray:
        """Per list entry: the document is a positive of its query."""
        owner_pos = np.repeat(np.arange(self.queries, dtype=np.int64), self.positives_per_query)
        keys = owner_pos * (self.corpus_rows + 1) + self.pos_rows
        owner, _ = self.owners()
        return np.isin(owner * (self.corpus_rows + 1) + self.rows, keys)


def ragged_to_padded(ptr: np.ndarray, flat: np.ndarray, lo: int, hi: int, fill: Any) -> np.ndarray:
    """Lists ``lo..hi`` of a CSR array as one ``(hi - lo, longest)`` array padded with ``fill``."""
    lengths = ptr[lo + 1:hi + 1] - ptr[lo:hi]
    width = int(lengths.max()) if len(lengths) else 0
    col = np.arange(width)[None, :]
    valid = col < lengths[:, None]
    if not len(flat):
        return np.full((hi - lo, width), fill, dtype=flat.dtype)
    taken = flat[np.where(valid, ptr[lo:hi, None] + col, 0)]
    return np.where(valid, taken, np.asarray(fill, dtype=flat.dtype)).astype(flat.dtype)


def list_chunks(lengths: np.ndarray, budget_mib: float, bytes_per_entry: int = 96) -> list[tuple[int, int]]:
    """Contiguous query ranges whose padded ``queries × longest`` block fits the budget
    (at least one query each)."""
    cap = rows_per_block(bytes_per_entry, budget_mib)
    out: list[tuple[int, int]] = []
    lo, widest = 0, 0
    for i, length in enumerate(lengths.tolist()):
        wider = max(widest, length, 1)
        if i > lo and (i - lo + 1) * wider > cap:
            out.append((lo, i))
            lo, wider = i, max(length, 1)
        widest = wider
    if len(lengths):
        out.append((lo, len(lengths)))
    return out


# -- scoring helpers --------------------------------------------------------------------------

def _ready(block: np.ndarray, metric: RetrievalMetric) -> np.ndarray:
    """float32 copy of rows, L2-normalised for cosine (zero rows stay zero)."""
    if metric == "cosine":
        return l2_normalized(block, dtype=np.float32)
    return np.array(block, dtype=np.float32, copy=True)


def pair_scores(
    queries: np.ndarray, corpus: np.ndarray, query_rows: np.ndarray, doc_rows: np.ndarray, *,
    metric: RetrievalMetric, budget_mib: float = DEFAULT_BUDGET_MIB,
) -> np.ndarray:
    """``score(queries[query_rows[i]], corpus[doc_rows[i]])`` for each i, float32, in blocks."""
    out = np.empty(len(query_rows), dtype=np.float32)
    step = rows_per_block(corpus.shape[1] * 16, budget_mib)
    for start, stop in blocks(len(query_rows), step):
        q = _ready(queries[np.asarray(query_rows[start:stop])], metric)
        d = _ready(corpus[np.asarray(doc_rows[start:stop])], metric)
        out[start:stop] = np.einsum("ij,ij->i", q, d)
    return out


def positive_similarity(
    corpus: np.ndarray, list_ptr: np.ndarray, rows: np.ndarray, pos_ptr: np.ndarray, pos_rows: np.ndarray, *,
    metric: RetrievalMetric, budget_mib: float = DEFAULT_BUDGET_MIB,
) -> np.ndarray:
    """Each list entry's largest similarity to a positive of its query (float32, aligned with
    ``rows``), computed over padded blocks of queries within the budget."""
    m = len(list_ptr) - 1
    out = np.empty(len(rows), dtype=np.float32)
    if m == 0 or len(rows) == 0:
        return out
    counts = np.diff(pos_ptr)
    p_max = int(counts.max())
    dim = corpus.shape[1]
    lengths = np.diff(list_ptr)
    for lo, hi in list_chunks(lengths, budget_mib, bytes_per_entry=(dim + p_max) * 4 + p_max * 4 + 16):
        cand = ragged_to_padded(list_ptr, rows, lo, hi, -1)
        width = cand.shape[1]
        vectors = _ready(corpus[np.where(cand >= 0, cand, 0).ravel()], metric).reshape(hi - lo, width, dim)
        positives_padded = ragged_to_padded(pos_ptr, pos_rows, lo, hi, -1)
        valid = positives_padded >= 0
        positives = _ready(corpus[np.where(valid, positives_padded, 0).ravel()], metric)
        positives = positives.reshape(hi - lo, positives_padded.shape[1], dim)
        sims = np.einsum("bkd,bpd->bkp", vectors, positives)
        sims = np.where(valid[:, None, :], sims, -np.inf).max(axis=2)
        out[list_ptr[lo]:list_ptr[hi]] = sims[cand >= 0]
    return out


# -- searching ----------------------------------------------------------------------------------

def _exact_lists(queries: np.ndarray, corpus: np.ndarray, rows: np.ndarray, k: int, search: SearchSpec,
                 execution: Execution) -> tuple[np.ndarray, np.ndarray]:
    """Top-k lists of ``queries[rows]`` by :func:`embedkit.ranking.top_k`."""
    from embedkit.ranking import top_k

    k = min(k, corpus.shape[0])
    found = top_k(np.asarray(queries[rows]), corpus, k, metric=search.metric, execution=execution)
    return np.asarray(found.indices, dtype=np.int64), np.asarray(found.values, dtype=np.float32)


class ApproximateSearch:
    """A FAISS IVF/HNSW index over the corpus; its candidates are re-scored exactly."""

    def __init__(self, corpus: np.ndarray, search: SearchSpec, execution: Execution) -> None:
        from embedkit.knn import build_index

        if search.metric != "cosine":
            raise OptionError("--index ivf/hnsw supports --metric cosine only; use the exact search for dot")
        self.corpus = corpus
        self.search = search
        self.budget_mib = execution.budget_mib
        self.built = build_index(corpus, search.index, metric="cosine", nlist=search.nlist, nprobe=search.nprobe,
                                 ef_search=search.ef_search, seed=search.seed, budget_mib=execution.budget_mib,
                                 progress=execution.progress)

    def lists(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from embedkit.knn import _search_params

        k = min(k, self.corpus.shape[0])
        params = _search_params(self.built, k, None)
        out_rows = np.full((len(rows), k), -1, dtype=np.int64)
        out_scores = np.full((len(rows), k), np.nan, dtype=np.float32)
        step = rows_per_block(k * 16 + queries.shape[1] * 4, self.budget_mib)
        for start, stop in blocks(len(rows), step):
            q = _ready(queries[rows[start:stop]], "cosine")
            _, found = self.built.index.search(q, k, params=params)
            found = found.astype(np.int64)
            valid = found >= 0
            qi = np.repeat(np.arange(stop - start), k)[valid.ravel()]
            exact = np.full(found.shape, -np.inf, dtype=np.float32)
            if valid.any():
                docs = _ready(self.corpus[found[valid]], "cosine")
                exact[valid] = np.einsum("ij,ij->i", q[qi], docs)
            key_rows = np.where(valid, found, np.iinfo(np.int64).max)
            order = np.lexsort((key_rows, -exact.astype(np.float64)), axis=1)
            out_rows[start:stop] = np.take_along_axis(found, order, axis=1)
            out_scores[start:stop] = np.where(out_rows[start:stop] >= 0, np.take_along_axis(exact, order, axis=1),
                                              np.nan)
        return out_rows, out_scores


def _flatten(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(b, k)`` lists padded with ``-1`` at their ends -> ``(lengths, rows, scores)`` flat."""
    valid = rows >= 0
    return valid.sum(axis=1).astype(np.int64), rows[valid], scores[valid]


def _replace_lists(ptr: np.ndarray, rows: np.ndarray, scores: np.ndarray, subset: np.ndarray,
                   new_lengths: np.ndarray, new_rows: np.ndarray, new_scores: np.ndarray) -> tuple[
                       np.ndarray, np.ndarray, np.ndarray]:
    """CSR lists with the lists of queries ``subset`` replaced by new (flat) ones."""
    m = len(ptr) - 1
    lengths = np.diff(ptr)
    replaced = np.zeros(m, dtype=bool)
    replaced[subset] = True
    lengths_out = lengths.copy()
    lengths_out[subset] = new_lengths
    ptr_out = np.concatenate([[0], np.cumsum(lengths_out)]).astype(np.int64)
    rows_out = np.empty(int(ptr_out[-1]), dtype=np.int64)
    scores_out = np.empty(int(ptr_out[-1]), dtype=np.float32)
    owner = np.repeat(np.arange(m, dtype=np.int64), lengths)
    keep = ~replaced[owner]
    where_old = ptr_out[owner[keep]] + (np.arange(len(rows)) - ptr[owner])[keep]
    rows_out[where_old] = rows[keep]
    scores_out[where_old] = scores[keep]
    new_owner = np.repeat(np.asarray(subset, dtype=np.int64), new_lengths)
    new_ptr = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    position = np.arange(len(new_rows)) - np.repeat(new_ptr[:-1], new_lengths)
    rows_out[ptr_out[new_owner] + position] = new_rows
    scores_out[ptr_out[new_owner] + position] = new_scores
    return ptr_out, rows_out, scores_out


def find_candidates(
    queries: np.ndarray,
    corpus: np.ndarray,
    query_rows: np.ndarray,
    pos_ptr: np.ndarray,
    pos_rows: np.ndarray,
    pos_relevance: np.ndarray,
    selection: SelectionSpec,
    search: SearchSpec,
    *,
    with_positive_similarity: bool = False,
    deepest: SelectionSpec | None = None,
    searcher: ApproximateSearch | None = None,
    execution: Execution = Execution(),
) -> Candidates:
    """Ranked candidate lists deep enough for ``selection`` and for ``deepest`` (the most
    demanding margin of a sweep): the ``range_max + P_max`` window, or grown per query.
    ``execution`` runs the exact search and bounds every block."""
    budget_mib = execution.budget_mib
    n_corpus = int(corpus.shape[0])
    m = len(query_rows)
    counts = np.diff(pos_ptr)
    p_max = int(counts.max()) if m else 0
    owner = np.repeat(np.arange(m, dtype=np.int64), counts)
    pos_scores = pair_scores(queries, corpus, query_rows[owner], pos_rows, metric=search.metric,
                             budget_mib=budget_mib)

    def lists(subset: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat top-k lists of the queries ``subset``, searched in query blocks whose
        ``(block, k)`` answers fit the budget."""
        parts = []
        step = rows_per_block(k * 12, budget_mib) if len(subset) > 1 else 1
        for start, stop in blocks(len(subset), step):
            chosen = query_rows[subset[start:stop]]
            if searcher is not None:
                parts.append(_flatten(*searcher.lists(queries, chosen, k)))
            else:
                whole = start == 0 and stop == len(subset)  # progress only for a search in one piece
                parts.append(_flatten(*_exact_lists(queries, corpus, chosen, k, search,
                                                    execution if whole else execution.quiet())))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    def build(ptr: np.ndarray, rows: np.ndarray, scores: np.ndarray, depth: np.ndarray, window: int | None,
              sims_wanted: bool = with_positive_similarity) -> Candidates:
        sims = None
        if sims_wanted:
            sims = positive_similarity(corpus, ptr, rows, pos_ptr, pos_rows, metric=search.metric,
                                       budget_mib=budget_mib)
        return Candidates(query_rows=query_rows, list_ptr=ptr, rows=rows, scores=scores, depth=depth,
                          pos_ptr=pos_ptr, pos_rows=pos_rows, pos_scores=pos_scores, pos_relevance=pos_relevance,
                          corpus_rows=n_corpus, metric=search.metric, window=window, positive_similarity=sims,
                          approximate=searcher is not None)

    # Every selection the lists must settle: the run's own and, with a sweep, the most
    # demanding margin of it (either may need the deeper lists).
    targets = [replace(selection, sampling="top")] + ([] if deepest is None else [replace(deepest, sampling="top")])
    window = None if selection.range_max is None else selection.range_max + p_max
    k = min(n_corpus, window if window is not None else max(t.needed for t in targets) + p_max + GROW_SLACK)
    lengths, rows, scores = lists(np.arange(m), k)
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    depth = np.full(m, k, dtype=np.int64)
    if window is not None:
        return build(ptr, rows, scores, depth, window)
    filtering = selection.max_positive_similarity is not None
    while True:
        cand = build(ptr, rows, scores, depth, None, sims_wanted=filtering)
        settled = np.logical_and.reduce([select_from(cand, target, budget_mib=budget_mib).settled for target in targets])
        pending = np.flatnonzero(~settled)
        if len(pending) == 0:
            return build(ptr, rows, scores, depth, None) if with_positive_similarity and not filtering else cand
        k = min(n_corpus, int(depth[pending].max()) * GROW_FACTOR)
        _check_list_memory(len(rows) + len(pending) * k, len(pending), k, budget_mib)
        new_lengths, new_rows, new_scores = lists(pending, k)
        ptr, rows, scores = _replace_lists(ptr, rows, scores, pending, new_lengths, new_rows, new_scores)
        depth[pending] = k


def _check_list_memory(entries: int, pending: int, depth: int, budget_mib: float) -> None:
    """Refuse candidate lists that would take more than ``LIST_BUDGETS`` × the budget."""
    need = entries * 16
    allowed = LIST_BUDGETS * budget_mib * 1024 * 1024
    if need > allowed:
        raise OptionError(
            f"without --range-max, {pending:,} queries need lists of {depth:,} documents (the filters remove "
            f"the top of their ranking); the lists would take {need / 2**20:,.0f} MiB, over {LIST_BUDGETS} × "
            "--budget-mib. Give --range-max B, or raise --budget-mib")


def select_from(candidates: Candidates, spec: SelectionSpec, *, budget_mib: float = DEFAULT_BUDGET_MIB) -> Selection:
    """The selection over candidate lists, in padded blocks of queries within ``budget_mib``
    (window lists are complete by construction). One random generator runs through all
    blocks in query order, so the blocks do not change the draws."""
    exhaustive = candidates.depth >= candidates.corpus_rows
    if spec.range_max is not None:
        exhaustive = exhaustive | (candidates.depth >= min(candidates.corpus_rows, spec.range_max + candidates.p_max))
    lowest = candidates.lowest_positive()
    is_pos = candidates.is_positive()
    ptr = candidates.list_ptr
    rng = np.random.default_rng(spec.seed)
    parts = []
    for lo, hi in list_chunks(candidates.lengths, budget_mib):
        sims = None
        if candidates.positive_similarity is not None:
            sims = ragged_to_padded(ptr, candidates.positive_similarity, lo, hi, np.nan)
        parts.append(select_negatives(
            ragged_to_padded(ptr, candidates.rows, lo, hi, -1),
            ragged_to_padded(ptr, candidates.scores, lo, hi, np.nan),
            ragged_to_padded(ptr, is_pos, lo, hi, False), lowest[lo:hi], spec, exhaustive=exhaustive[lo:hi],
            positive_similarity=sims, rng=rng))
    return merge_selections(parts, spec.negatives)


def merge_selections(parts: list[Selection], negatives: int) -> Selection:
    """Selections of consecutive query blocks as one."""
    if not parts:
        empty = np.zeros((0, negatives), dtype=np.int64)
        return Selection(rows=empty, scores=empty.astype(np.float32), positions=empty,
                         survivors=np.zeros(0, np.int64), settled=np.zeros(0, bool))
    removed: dict[str, int] = {}
    for part in parts:
        for name, count in part.removed.items():
            removed[name] = removed.get(name, 0) + count
    return Selection(rows=np.concatenate([p.rows for p in parts]), scores=np.concatenate([p.scores for p in parts]),
                     positions=np.concatenate([p.positions for p in parts]),
                     survivors=np.concatenate([p.survivors for p in parts]),
                     settled=np.concatenate([p.settled for p in parts]), removed=removed,
                     examined=sum(p.examined for p in parts))
