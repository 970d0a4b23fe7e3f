"""Query → corpus hard-negative mining with qrels (retrieval training data).

Scores are similarities: ``cosine`` (rows L2-normalised) or ``dot``. For each query that
has at least one positive (a qrels row with relevance > 0), its corpus documents are
ranked by score (descending, ties by corpus row ascending) and the selection of
:mod:`embedkit.mining.retrieval_select` picks its negatives.

The candidate lists and how deep they are searched: :mod:`embedkit.mining.retrieval_candidates`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from embedkit.choices import DEFAULT_BUDGET_MIB
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.mining.retrieval_candidates import (
    ApproximateSearch,
    Candidates,
    SearchSpec,
    find_candidates,
    select_from,
)
from embedkit.mining.retrieval_select import FILTERS, Selection, SelectionSpec

STATS = ("count", "mean", "median", "std", "min", "25%", "50%", "75%", "max")


@dataclass(frozen=True)
class RetrievalMining:
    """The result: selected negatives per mined query, and the report."""

    candidates: Candidates
    spec: SelectionSpec
    selection: Selection
    search: dict[str, Any]
    stats: dict[str, dict[str, float]]
    removed: dict[str, int]
    short_queries: int
    queries_without_negatives: int
    sweep: list[dict[str, Any]] | None = None
    certainty: dict[str, Any] = field(default_factory=dict)
    qrels: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def triplets(self) -> int:
        per_query = (self.selection.rows >= 0).sum(axis=1)
        return int((per_query * self.candidates.positives_per_query).sum())

    @property
    def negatives(self) -> int:
        return int((self.selection.rows >= 0).sum())


# -- validation -------------------------------------------------------------------------------

def validate_selection(spec: SelectionSpec) -> SelectionSpec:
    """Refuse impossible selections with one-line messages."""
    if spec.negatives < 1:
        raise OptionError(f"--negatives must be >= 1; got {spec.negatives}")
    if spec.range_min < 0:
        raise OptionError(f"--range-min must be >= 0; got {spec.range_min}")
    if spec.range_max is not None and spec.range_max < 1:
        raise OptionError(f"--range-max must be >= 1; got {spec.range_max}")
    if spec.range_max is not None and spec.range_min >= spec.range_max:
        raise OptionError(f"--range-min ({spec.range_min}) must be below --range-max ({spec.range_max})")
    if spec.sampling == "random" and spec.range_max is None:
        raise OptionError("--sampling random needs --range-max B "
                          "(the survivors ranked below B are the pool it draws from)")
    for name in ("absolute_margin", "relative_margin", "max_score", "min_score", "max_positive_similarity"):
        value = getattr(spec, name)
        if value is not None and not np.isfinite(value):
            raise OptionError(f"--{name.replace('_', '-')} must be a finite number; got {value}")
    return spec


def quantiles(values: np.ndarray) -> dict[str, float]:
    """Count, mean, median, std, min, quartiles and max (as sentence-transformers prints them)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return {"count": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "min": float(v.min()),
            "25%": float(q[0]), "50%": float(q[1]), "75%": float(q[2]), "max": float(v.max())}


def window_cut(candidates: Candidates, spec: SelectionSpec) -> Candidates:
    """Lists cut to the ``range_max + P_max`` window of ``spec`` (a prefix of deeper lists)."""
    if spec.range_max is None:
        return candidates
    width = spec.range_max + candidates.p_max
    if not len(candidates.lengths) or width >= int(candidates.lengths.max()):
        return candidates
    _, position = candidates.owners()
    keep = position < width
    lengths = np.minimum(candidates.lengths, width)
    sims = None if candidates.positive_similarity is None else candidates.positive_similarity[keep]
    return replace(candidates, list_ptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   rows=candidates.rows[keep], scores=candidates.scores[keep],
                   depth=np.minimum(candidates.depth, width), positive_similarity=sims, window=width)


def certainty(candidates: Candidates, spec: SelectionSpec, selection: Selection) -> dict[str, Any]:
    """Whether the lists held every candidate ``spec`` needs, and for how many queries not."""
    if spec.range_max is not None:
        need = min(candidates.corpus_rows, spec.range_max + candidates.p_max)
        short = int((candidates.depth < need).sum())
    else:
        short = int((~selection.settled).sum())
    return {"certain": short == 0, "uncertain_queries": short}


def summarise(candidates: Candidates, spec: SelectionSpec, selection: Selection, search: dict[str, Any],
              **extra: Any) -> RetrievalMining:
    """Statistics of a selection: score quantiles, removals, short queries."""
    counts = candidates.positives_per_query
    found = selection.rows >= 0
    per_query = found.sum(axis=1)
    neg_scores = np.repeat(selection.scores, counts, axis=0)  # one row per (query, positive)
    pos_scores = candidates.pos_scores
    keep = np.repeat(found, counts, axis=0)
    differences = (pos_scores[:, None].astype(np.float64) - neg_scores)[keep]
    stats = {"positive": quantiles(pos_scores), "negative": quantiles(neg_scores[keep]),
             "difference": quantiles(differences)}
    removed = {name: selection.removed.get(name, 0) for name in FILTERS if name in selection.removed}
    return RetrievalMining(candidates=candidates, spec=spec, selection=selection, search=search, stats=stats,
                           removed=removed, short_queries=int((per_query < spec.negatives).sum()),
                           queries_without_negatives=int((per_query == 0).sum()), **extra)


def sweep_margins(candidates: Candidates, spec: SelectionSpec, margins: tuple[float, ...], *,
                  budget_mib: float = DEFAULT_BUDGET_MIB) -> list[dict[str, Any]]:
    """Negatives, triplets and short queries at each relative margin, from one candidate set."""
    out = []
    counts = candidates.positives_per_query
    for value in margins:
        chosen = select_from(candidates, replace(spec, relative_margin=value), budget_mib=budget_mib)
        per_query = (chosen.rows >= 0).sum(axis=1)
        out.append({"relative_margin": value, "negatives": int(per_query.sum()),
                    "triplets": int((per_query * counts).sum()),
                    "short_queries": int((per_query < spec.negatives).sum()),
                    "removed_by_margin": chosen.removed.get("relative_margin", 0)})
    return out


def group_positives(query_rows: np.ndarray, doc_rows: np.ndarray, relevance: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Positives (relevance > 0) grouped by query row: ``(queries, ptr, docs, relevance, info)``.

    Queries keep ascending row order; a query's positives keep their qrels order; a repeated
    (query, doc) pair counts once (its first relevance)."""
    qr = np.asarray(query_rows, dtype=np.int64)
    dr = np.asarray(doc_rows, dtype=np.int64)
    rel = np.asarray(relevance, dtype=np.float64)
    positive = rel > 0
    judged_queries = np.unique(qr)
    qr, dr, rel = qr[positive], dr[positive], rel[positive]
    order = np.lexsort((np.arange(len(qr)), qr))
    qr, dr, rel = qr[order], dr[order], rel[order]
    pair = np.stack([qr, dr], axis=1) if len(qr) else np.zeros((0, 2), np.int64)
    _, first = np.unique(pair, axis=0, return_index=True)
    first = np.sort(first)
    duplicates = len(qr) - len(first)
    qr, dr, rel = qr[first], dr[first], rel[first]
    queries, starts = np.unique(qr, return_index=True)
    ptr = np.append(starts, len(qr)).astype(np.int64)
    info = {"judgements": int(len(query_rows)), "positives": int(len(dr)), "duplicate_pairs": int(duplicates),
            "non_positive_judgements": int((~positive).sum()),
            "queries_without_positive": int(len(judged_queries) - len(queries))}
    return queries.astype(np.int64), ptr, dr, rel, info


def mine_retrieval(
    corpus: np.ndarray,
    queries: np.ndarray,
    judged: tuple[np.ndarray, np.ndarray, np.ndarray],
    spec: SelectionSpec,
    search: SearchSpec,
    *,
    margins: tuple[float, ...] = (),
    qrels_info: dict[str, Any] | None = None,
    keep_positive_similarity: bool = False,
    execution: Execution = Execution(),
) -> RetrievalMining:
    """Mine negatives for every query with a positive in ``judged = (query_rows, doc_rows,
    relevance)``; see the module docstring for the search and
    :mod:`embedkit.mining.retrieval_select` for the selection. ``keep_positive_similarity``
    computes each candidate's similarity to the positives even without the filter (for a
    candidates file that later runs filter with ``--max-positive-similarity``). ``execution``
    runs the exact search and bounds every block."""
    started = time.perf_counter()
    validate_selection(spec)
    if corpus.shape[1] != queries.shape[1]:
        raise InputError(f"queries have dimension {queries.shape[1]} but the corpus has {corpus.shape[1]}")
    query_rows, ptr, docs, rel, info = group_positives(*judged)
    if len(query_rows) == 0:
        raise InputError("no query has a positive (a qrels row with relevance > 0); nothing to mine")
    deepest = None
    if margins:
        deepest = replace(spec, relative_margin=max(margins, key=lambda r: r))
    searcher = ApproximateSearch(corpus, search, execution) if search.index != "exact" else None
    cand = find_candidates(queries, corpus, query_rows, ptr, docs, rel, spec, search,
                           with_positive_similarity=(keep_positive_similarity
                                                     or spec.max_positive_similarity is not None),
                           deepest=deepest, searcher=searcher, execution=execution)
    selection = select_from(cand, spec, budget_mib=execution.budget_mib)
    described = describe_search(cand, spec, search, searcher)
    if searcher is not None and search.check_recall > 0:
        described["recall"] = _recall(queries, corpus, cand, spec, search, selection, execution.quiet())
    result = summarise(cand, spec, selection, described, qrels={**(qrels_info or {}), **info},
                       sweep=sweep_margins(cand, spec, margins, budget_mib=execution.budget_mib) if margins else None,
                       certainty=certainty(cand, spec, selection))
    return replace(result, seconds=time.perf_counter() - started)


def describe_search(cand: Candidates, spec: SelectionSpec, search: SearchSpec,
                    searcher: ApproximateSearch | None) -> dict[str, Any]:
    """What the search did, for the report."""
    kind = "exact" if searcher is None else search.index
    how = ("blocked exact top-k over queries × corpus blocks" if searcher is None
           else f"FAISS {searcher.built.description}, candidates re-scored exactly")
    out: dict[str, Any] = {"index": kind, "description": how, "metric": cand.metric,
                           "corpus_rows": cand.corpus_rows, "queries": cand.queries,
                           "max_positives": cand.p_max, "depth_max": int(cand.depth.max()) if cand.queries else 0,
                           "recall": None}
    if spec.range_max is not None:
        out["window"] = f"top range_max + P_max = {spec.range_max} + {cand.p_max} documents per query"
    else:
        first = int(cand.depth.min()) if cand.queries else 0
        deeper = int((cand.depth > first).sum()) if cand.queries else 0
        out["window"] = (f"whole corpus, exactly: the top {first:,} documents per query, searched deeper "
                         f"(up to {int(cand.depth.max()) if cand.queries else 0:,}) for {deeper:,} queries "
                         "that needed more survivors")
    return out


def _recall(queries: np.ndarray, corpus: np.ndarray, cand: Candidates, spec: SelectionSpec, search: SearchSpec,
            selection: Selection, execution: Execution) -> dict[str, Any]:
    """Share of the exactly selected negatives of ``check_recall`` sampled queries that the
    approximate run selected too."""
    m = cand.queries
    take = np.sort(np.random.default_rng(search.seed).choice(m, size=min(m, search.check_recall), replace=False))
    counts = cand.positives_per_query[take]
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pos = np.concatenate([cand.pos_rows[cand.pos_ptr[i]:cand.pos_ptr[i + 1]] for i in take])
    rel = np.concatenate([cand.pos_relevance[cand.pos_ptr[i]:cand.pos_ptr[i + 1]] for i in take])
    exact = find_candidates(queries, corpus, cand.query_rows[take], ptr, pos, rel, spec,
                            replace(search, index="exact"),
                            with_positive_similarity=spec.max_positive_similarity is not None, execution=execution)
    truth = select_from(exact, spec, budget_mib=execution.budget_mib).rows
    got = selection.rows[take]
    hits = sum(len(np.intersect1d(t[t >= 0], g[g >= 0])) for t, g in zip(truth, got))
    total = int((truth >= 0).sum())
    return {"value": hits / total if total else 1.0, "queries": int(len(take)), "negatives": total}


def mine_from_candidates(cand: Candidates, spec: SelectionSpec, *, margins: tuple[float, ...] = (),
                         budget_mib: float = DEFAULT_BUDGET_MIB,
                         source: str = "", qrels_info: dict[str, Any] | None = None) -> RetrievalMining:
    """Filters and sampling over saved candidate lists, without searching again."""
    started = time.perf_counter()
    validate_selection(spec)
    if spec.max_positive_similarity is not None and cand.positive_similarity is None:
        raise OptionError("--max-positive-similarity: the candidates file has no positive similarities "
                          "(save it with --max-positive-similarity set, or search again)")
    cut = window_cut(cand, spec)
    selection = select_from(cut, spec, budget_mib=budget_mib)
    sure = certainty(cut, spec, selection)
    search = {"index": "saved candidates", "description": f"candidates read from {source}", "metric": cand.metric,
              "corpus_rows": cand.corpus_rows, "queries": cand.queries, "max_positives": cand.p_max,
              "depth_max": int(cand.depth.max()) if cand.queries else 0, "recall": None,
              "window": (f"top range_max + P_max = {spec.range_max} + {cand.p_max} documents per query"
                         if spec.range_max is not None else "the saved lists")}
    if margins:
        for value in margins:
            probe = select_from(cut, replace(spec, relative_margin=value), budget_mib=budget_mib)
            if not certainty(cut, spec, probe)["certain"]:
                sure = {**sure, "certain": False}
    result = summarise(cut, spec, selection, search, qrels=qrels_info or {},
                       sweep=sweep_margins(cut, spec, margins, budget_mib=budget_mib) if margins else None,
                       certainty=sure)
    return replace(result, seconds=time.perf_counter() - started)
