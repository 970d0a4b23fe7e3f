"""Retrieval evaluation with relevance judgements (qrels), as trec_eval defines the figures.

Every query is ranked against the whole corpus exactly (:func:`embedkit.ranking.top_k`,
ties by ascending corpus row), or a TREC run file is read. For a query with ranked
documents ``d_1, d_2, ...``, grades ``g_i`` (the qrels grade of ``d_i``; 0 when unjudged;
a grade ``<= 0`` is non-relevant and counts as gain 0), ``rel_i = g_i > 0`` and ``R`` the
number of documents the qrels judge relevant for the query:

- ``ndcg_at_K`` = DCG@K / IDCG@K with ``DCG@K = Σ_{i≤K} g_i / log2(i + 1)`` and IDCG@K the
  same sum over the query's judged grades sorted in descending order (trec_eval
  ``ndcg_cut``: the gain is the grade itself);
- ``map_at_K`` = ``(1/R) Σ_{i≤K, rel_i} P@i`` with ``P@i = (1/i) Σ_{j≤i} rel_j`` (trec_eval
  ``map_cut``: divided by every relevant document, retrieved or not);
- ``recall_at_K`` = ``(Σ_{i≤K} rel_i) / R`` (trec_eval ``recall``);
- ``precision_at_K`` = ``(Σ_{i≤K} rel_i) / K``, K even when fewer documents were ranked
  (trec_eval ``P``);
- ``mrr_at_K`` = ``1 / min{i ≤ K : rel_i}``, 0 when none (MTEB's MRR@K; trec_eval's
  ``recip_rank`` has no cut-off).

Each figure is the mean over the *evaluated* queries: those with ``R >= 1``. Queries
without a relevant judgement are skipped and counted (trec_eval, too, yields nothing
meaningful for them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from embedkit.choices import DEFAULT_IR_KS
from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.dataset import Dataset
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.qrels import STDIN, Qrels, canonical_ids, pair_codes, resolve_qrels, row_ids
from embedkit.ranking import RANKING_METRICS, RankingMetric, top_k

#: The figure families, in display order.
IR_FAMILIES: tuple[str, ...] = ("ndcg", "mrr", "map", "recall", "precision")
IR_FIGURE = re.compile(r"^(ndcg|mrr|map|recall|precision)_at_([1-9][0-9]{0,5})$")
#: Tag of the run files embedkit writes (deterministic: no time, no host).
RUN_TAG = "embedkit"
#: Bytes per query and rank of the scoring pass (gains, ideal gains, flags: float64).
_SCORE_BYTES = 32


@dataclass(frozen=True)
class Run:
    """A ranking: ``doc_ids[q, r]`` is the (r+1)-th document of query ``query_ids[q]``
    (``""`` past the end), ``scores`` larger-is-better (Euclidean: minus the distance)."""

    query_ids: np.ndarray
    doc_ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class IRResult:
    """IR figures averaged over the evaluated queries.

    ``figures`` maps ``{family}_at_{K}`` to its mean for every family and every K of ``ks``.
    ``per_query`` (when asked) is a column table: ``query_id``, ``relevant`` (R) and one
    column per figure."""

    figures: dict[str, float]
    ks: tuple[int, ...]
    queries: int
    skipped_queries: int
    relevant_judgements: int
    dropped_judgements: int = 0
    metric: str | None = None
    documents: int | None = None
    qrels_source: str = ""
    run_source: str | None = None
    queries_missing_from_run: int = 0
    per_query: dict[str, np.ndarray] | None = None
    run: Run | None = field(default=None, repr=False)


def figure_names(ks: tuple[int, ...]) -> tuple[str, ...]:
    """``ndcg_at_10, ..., precision_at_100``: every family at every K (families first)."""
    return tuple(f"{family}_at_{k}" for family in IR_FAMILIES for k in ks)


def validated_ks(ks: tuple[int, ...]) -> tuple[int, ...]:
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks:
        raise OptionError("give at least one cut-off --k")
    if ks[0] < 1:
        raise OptionError(f"--k values must be >= 1; got {ks[0]}")
    return ks


def score_rankings(
    ranked: np.ndarray,
    judged_query: np.ndarray,
    judged_doc: np.ndarray,
    judged_grade: np.ndarray,
    ks: tuple[int, ...],
    *,
    budget_mib: float = DEFAULT_BUDGET_MIB,
) -> dict[str, np.ndarray]:
    """Per-query figures (float64) from rankings and judgements, scored in blocks of queries
    whose ``(block, max(ks))`` matrices fit ``budget_mib``.

    Parameters
    ----------
    ranked : (q, width) int, document codes ranked per query; ``-1`` = nothing ranked there.
        ``width >= max(ks)`` is not needed: missing ranks count as non-relevant.
    judged_query, judged_doc, judged_grade : one entry per judgement: query position
        (0..q-1), document code, grade. Each (query, document) pair at most once.
    ks : cut-offs.

    >>> s = score_rankings(np.array([[5, 7, 9]]), np.array([0, 0]), np.array([7, 8]), np.array([1, 1]), (3,))
    >>> float(s["mrr_at_3"][0]), float(s["recall_at_3"][0]), float(s["precision_at_3"][0])
    (0.5, 0.5, 0.3333333333333333)
    """
    q = ranked.shape[0]
    kmax = max(ks)
    if ranked.shape[1] < kmax:
        ranked = np.concatenate([ranked, np.full((q, kmax - ranked.shape[1]), -1, ranked.dtype)], axis=1)
    ranked = ranked[:, :kmax].astype(np.int64)
    grades = np.asarray(judged_grade, dtype=np.float64)
    positive = grades > 0
    relevant = np.bincount(judged_query[positive], minlength=q).astype(np.float64)
    # Judgement lookup: one sorted key per (query, document).
    width = int(max(ranked.max(initial=-1), np.max(judged_doc, initial=-1))) + 1
    keys = judged_query.astype(np.int64) * width + judged_doc.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys, sorted_grades = keys[order], grades[order]
    # Ideal gains: each query's positive grades in descending order, the first kmax of them
    # (filled per block of queries below).
    pq, pg = judged_query[positive], grades[positive]
    by = np.lexsort((-pg, pq))
    pq, pg = pq[by], pg[by]
    starts = np.searchsorted(pq, np.arange(q))
    place = np.arange(len(pq)) - starts[pq]
    keep = place < kmax
    pq, pg, place = pq[keep], pg[keep], place[keep]

    discount = 1.0 / np.log2(np.arange(2, kmax + 2, dtype=np.float64))
    positions = np.arange(1, kmax + 1, dtype=np.float64)
    out = {name: np.zeros(q) for name in figure_names(ks)}
    for start, stop in blocks(q, rows_per_block(kmax * _SCORE_BYTES, budget_mib)):
        block = ranked[start:stop]
        gains = np.zeros(block.shape)
        if len(keys):
            lookup = np.arange(start, stop, dtype=np.int64)[:, None] * width + block
            where = np.minimum(np.searchsorted(keys, lookup), len(keys) - 1)
            found = (block >= 0) & (keys[where] == lookup)
            gains = np.where(found, np.maximum(sorted_grades[where], 0.0), 0.0)
        hits = gains > 0
        cumulative = np.cumsum(hits, axis=1)
        dcg = np.cumsum(gains * discount, axis=1)
        ideal = np.zeros(block.shape)
        lo, hi = np.searchsorted(pq, [start, stop])
        ideal[pq[lo:hi] - start, place[lo:hi]] = pg[lo:hi]
        idcg = np.cumsum(ideal * discount, axis=1)
        precision_at_i = cumulative / positions
        ap = np.cumsum(np.where(hits, precision_at_i, 0.0), axis=1)
        first = np.where(hits.any(axis=1), np.argmax(hits, axis=1), -1)
        r = relevant[start:stop]
        with np.errstate(invalid="ignore", divide="ignore"):
            for k in ks:
                c = k - 1
                safe = np.where(idcg[:, c] > 0, idcg[:, c], 1.0)
                out[f"ndcg_at_{k}"][start:stop] = np.where(idcg[:, c] > 0, dcg[:, c] / safe, 0.0)
                out[f"map_at_{k}"][start:stop] = np.where(r > 0, ap[:, c] / np.maximum(r, 1), 0.0)
                out[f"recall_at_{k}"][start:stop] = np.where(r > 0, cumulative[:, c] / np.maximum(r, 1), 0.0)
                out[f"precision_at_{k}"][start:stop] = cumulative[:, c] / k
                out[f"mrr_at_{k}"][start:stop] = np.where((first >= 0) & (first < k), 1.0 / (first + 1), 0.0)
    return out


def _result(per_query: dict[str, np.ndarray], ks: tuple[int, ...], query_ids: np.ndarray, relevant: np.ndarray,
            keep_per_query: bool, **fields: object) -> IRResult:
    n = len(query_ids)
    # fsum: the mean does not depend on the order of the queries (run file vs dataset order).
    figures = {name: math.fsum(per_query[name].tolist()) / n if n else math.nan for name in figure_names(ks)}
    table = None
    if keep_per_query:
        table = {"query_id": query_ids, "relevant": relevant.astype(np.int64),
                 **{name: per_query[name] for name in figure_names(ks)}}
    return IRResult(figures=figures, ks=ks, queries=n, per_query=table, **fields)  # type: ignore[arg-type]


def evaluate_qrels(
    corpus: Dataset,
    queries: Dataset,
    qrels: Qrels,
    *,
    ks: tuple[int, ...] = DEFAULT_IR_KS,
    metric: RankingMetric = "cosine",
    ignore_missing: bool = False,
    per_query: bool = False,
    keep_run: bool = False,
    execution: Execution = Execution(),
) -> IRResult:
    """IR figures of ``queries`` ranked exactly against ``corpus`` (see the module docstring).

    Ids: each dataset's id column (``Dataset.ids``), else its row numbers; qrels ids are
    matched as canonical text (see :mod:`embedkit.qrels`). Only queries with a relevant
    judgement are ranked, to depth ``max(ks)``. ``keep_run`` keeps the ranking (for a TREC
    run file); ``per_query`` keeps a per-query table. ``execution`` runs the ranking's query
    blocks and bounds every block.
    """
    ks = validated_ks(ks)
    if metric not in RANKING_METRICS:
        raise OptionError(f"unknown metric {metric!r}; expected one of {', '.join(RANKING_METRICS)}")
    if queries.dim != corpus.dim:
        raise InputError(f"{queries.source}: queries have {queries.dim} dimensions but the corpus "
                         f"{corpus.source} has {corpus.dim}")
    judged = resolve_qrels(qrels, queries.ids, corpus.ids, n_queries=queries.rows, n_docs=corpus.rows,
                           ignore_missing=ignore_missing, query_source=queries.source, doc_source=corpus.source)
    positive = judged.relevance > 0
    relevant = np.bincount(judged.query_rows[positive], minlength=queries.rows)
    evaluated = np.flatnonzero(relevant > 0)
    if len(evaluated) == 0:
        raise InputError(f"{qrels.source}: no query of {queries.source} has a relevant document (grade > 0) "
                         "in the qrels; IR figures are undefined")
    query_ids = (canonical_ids(queries.ids) if queries.ids is not None else row_ids(queries.rows))[evaluated]
    doc_ids = canonical_ids(corpus.ids) if corpus.ids is not None else row_ids(corpus.rows)
    if keep_run:  # before the ranking: a run file that cannot be written fails fast, writing nothing
        refuse_spaced_ids("query", query_ids)
        refuse_spaced_ids("document", doc_ids)
    ranking = top_k(queries.embeddings[evaluated], corpus.embeddings, max(ks), metric=metric, execution=execution)
    position = np.searchsorted(evaluated, judged.query_rows)
    inside = (position < len(evaluated)) & (evaluated[np.minimum(position, len(evaluated) - 1)] == judged.query_rows)
    scores = score_rankings(ranking.indices, position[inside], judged.doc_rows[inside], judged.relevance[inside], ks,
                            budget_mib=execution.budget_mib)
    run = None
    if keep_run:
        ranked = ranking.indices
        names = np.where(ranked >= 0, doc_ids[np.maximum(ranked, 0)], "")
        values = -ranking.values if metric == "euclidean" else ranking.values
        run = Run(query_ids, names, values)
    return _result(scores, ks, query_ids, relevant[evaluated], per_query,
                   skipped_queries=int(queries.rows - len(evaluated)),
                   relevant_judgements=int(positive.sum()), dropped_judgements=judged.dropped, metric=metric,
                   documents=corpus.rows, qrels_source=qrels.source, run=run)


# -- TREC run files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFile:
    """The lines of a TREC run file ``qid Q0 docid rank score tag``."""

    query_ids: np.ndarray
    doc_ids: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    source: str


def read_run(path: str, *, stdin: BinaryIO | None = None) -> RunFile:
    """Read a TREC run file (whitespace-separated ``qid Q0 docid rank score tag``).

    A (query, document) pair listed twice is an error (trec_eval refuses it too)."""
    import sys

    source = "stdin" if path == STDIN else path
    try:
        data = (stdin if stdin is not None else sys.stdin.buffer).read() if path == STDIN else open(path, "rb").read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TREC run file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source}: a TREC run file is UTF-8 text") from None
    queries, docs, ranks, scores = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InputError(f"{source}: line {number} has {len(fields)} fields; a TREC run line is "
                             "'qid Q0 docid rank score tag'")
        try:
            rank, score = int(fields[3]), float(fields[4])
        except ValueError:
            raise InputError(f"{source}: line {number}: rank {fields[3]!r} or score {fields[4]!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(f"{source}: line {number}: score {fields[4]!r} is not finite")
        queries.append(fields[0])
        docs.append(fields[2])
        ranks.append(rank)
        scores.append(score)
    if not queries:
        raise InputError(f"{source}: run file is empty")
    run = RunFile(np.array(queries), np.array(docs), np.array(ranks, np.int64), np.array(scores), source)
    pairs = pair_codes(run.query_ids, run.doc_ids)
    _, first, counts = np.unique(pairs, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = first[np.argmax(counts > 1)]
        raise InputError(f"{source}: query '{run.query_ids[row]}' lists document '{run.doc_ids[row]}' more than once")
    return run


def refuse_spaced_ids(kind: str, ids: np.ndarray) -> None:
    """A TREC run file separates its fields by whitespace: an id holding any is refused."""
    spaced = [i for i in ids.tolist() if any(c.isspace() for c in i)]
    if spaced:
        raise InputError(f"{kind} id {spaced[0]!r} holds whitespace; a TREC run file cannot hold it")


def write_run(run: Run, path: str, *, tag: str = RUN_TAG, inputs: tuple[str | None, ...] = ()) -> int:
    """Write ``run`` as a TREC run file (``qid Q0 docid rank score tag``, ranks from 1,
    scores with 9 significant digits: float32 round-trips exactly). Returns the lines written."""
    from embedkit.output import atomic_output, check_output_path

    check_output_path(path, inputs)
    refuse_spaced_ids("query", run.query_ids)
    refuse_spaced_ids("document", run.doc_ids.ravel())
    lines = 0
    with atomic_output(path) as temporary, open(temporary, "w", encoding="utf-8") as sink:
        for q, qid in enumerate(run.query_ids.tolist()):
            docs, scores = run.doc_ids[q], run.scores[q]
            count = int(np.count_nonzero(docs != ""))
            sink.write("".join(f"{qid} Q0 {docs[r]} {r + 1} {float(scores[r]):.9g} {tag}\n" for r in range(count)))
            lines += count
    return lines


def evaluate_run(
    run: RunFile,
    qrels: Qrels,
    *,
    ks: tuple[int, ...] = DEFAULT_IR_KS,
    per_query: bool = False,
    budget_mib: float = DEFAULT_BUDGET_MIB,
) -> IRResult:
    """IR figures of a TREC run (no embeddings).

    Each query's documents rank by score descending, ties by the file's rank column
    (then document id). trec_eval instead breaks score ties by descending document id,
    so on runs with tied scores its figures can differ. The evaluated queries are the
    qrels queries with a relevant judgement; one the run lacks scores 0 on every figure
    (as ``trec_eval -c``) and is counted in ``queries_missing_from_run``.
    """
    ks = validated_ks(ks)
    positive = qrels.relevance > 0
    evaluated = np.unique(qrels.query_ids[positive])
    if len(evaluated) == 0:
        raise InputError(f"{qrels.source}: no query has a relevant document (grade > 0); IR figures are undefined")
    all_queries = np.union1d(np.unique(qrels.query_ids), np.unique(run.query_ids))
    doc_names, doc_codes = np.unique(np.concatenate([qrels.doc_ids, run.doc_ids]), return_inverse=True)
    qrels_docs, run_docs = doc_codes[: len(qrels.doc_ids)], doc_codes[len(qrels.doc_ids):]
    kmax = max(ks)
    ranked = np.full((len(evaluated), kmax), -1, dtype=np.int64)
    position = np.searchsorted(evaluated, run.query_ids)
    inside = (position < len(evaluated)) & (evaluated[np.minimum(position, len(evaluated) - 1)] == run.query_ids)
    lines = np.flatnonzero(inside)
    order = lines[np.lexsort((run_docs[lines], run.ranks[lines], -run.scores[lines], position[lines]))]
    groups = position[order]
    starts = np.searchsorted(groups, np.arange(len(evaluated)))
    place = np.arange(len(order)) - starts[groups]
    keep = place < kmax
    ranked[groups[keep], place[keep]] = run_docs[order[keep]]
    judged = np.searchsorted(evaluated, qrels.query_ids)
    known = (judged < len(evaluated)) & (evaluated[np.minimum(judged, len(evaluated) - 1)] == qrels.query_ids)
    scores = score_rankings(ranked, judged[known], qrels_docs[known], qrels.relevance[known], ks,
                            budget_mib=budget_mib)
    relevant = np.bincount(judged[known & positive], minlength=len(evaluated))
    missing = int(len(evaluated) - len(np.unique(position[lines])))
    return _result(scores, ks, evaluated, relevant, per_query,
                   skipped_queries=int(len(all_queries) - len(evaluated)),
                   relevant_judgements=int(positive.sum()), qrels_source=qrels.source, run_source=run.source,
                   queries_missing_from_run=missing)
