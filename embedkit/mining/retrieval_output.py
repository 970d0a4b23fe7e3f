"""Training files from a retrieval mining result, the candidates file, and provenance.

Formats (``--format``), one row per:

- ``triplet``: (query, positive, negative): ``query_id, positive_id, negative_id,
  positive_score, negative_score, negative_rank`` (``negative_rank``: 1-based position
  of the negative in the query's ranking of the whole corpus, positives included);
- ``n-tuple``: (query, positive) with all N negatives: ``query_id, positive_id,
  negative_1_id … negative_N_id, positive_score, negative_1_score …``. As in
  sentence-transformers, a pair with fewer than N negatives is left out (a trainer needs a
  fixed width); the report counts them;
- ``labeled-pair``: per query its positives (``label`` 1) then its negatives (``label`` 0):
  ``query_id, doc_id, label, score``; with texts ``query, positive, label, score, query_id,
  doc_id`` (sentence-transformers: ``anchor, positive, label, score``, the second column
  holding every passage);
- ``labeled-list``: per (query, positive) with at least one negative: ``query_id,
  doc_ids, labels, scores`` with ``[positive, negatives…]`` / ``[1, 0, …]`` lists; with texts
  ``query, positive, labels, scores, query_id, doc_ids``;
- ``flagembedding``: JSON lines ``{"query", "pos": [...], "neg": [...], "pos_scores",
  "neg_scores", "query_id", "pos_ids", "neg_ids"}``, one per query with a negative
  (FlagEmbedding's fine-tuning format; needs texts).

With texts (``--text-column``) the text columns come first, in the order trainers read
them by position: ``query, positive, negative`` (triplet), ``query, positive,
negative_1…`` (n-tuple), ``query, positive`` (labeled-pair/list, as sentence-transformers
names the passage column).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import InputError, OptionError
from embedkit.mining.retrieval import RetrievalMining
from embedkit.mining.retrieval_candidates import Candidates, RetrievalMetric
from embedkit.mining.retrieval_select import FORMATS, OutputFormat

__all__ = ["FORMATS", "OutputFormat", "check_format_output", "load_candidates", "save_candidates",
           "training_columns", "write_training_file"]
PROVENANCE_KEY = b"embedkit"
CANDIDATES_KEY = b"embedkit.candidates"


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def training_columns(
    result: RetrievalMining,
    fmt: OutputFormat,
    *,
    query_ids: np.ndarray,
    doc_ids: np.ndarray,
    query_texts: np.ndarray | None = None,
    doc_texts: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """The output columns of ``fmt`` and the number of rows left out (n-tuple pairs with
    fewer than N negatives, labeled-list pairs / flagembedding queries with none).

    ``query_ids[r]`` / ``doc_ids[r]`` give the id of query row / corpus row ``r``."""
    cand, sel = result.candidates, result.selection
    texts = query_texts is not None and doc_texts is not None
    if fmt == "flagembedding" and not texts:
        raise OptionError("--format flagembedding needs --text-column (FlagEmbedding trains on texts)")
    counts = cand.positives_per_query
    owner = np.repeat(np.arange(cand.queries), counts)  # one entry per (query, positive)
    found = sel.rows >= 0
    per_query = found.sum(axis=1)
    n = result.spec.negatives
    cols: dict[str, np.ndarray] = {}
    text_cols: dict[str, np.ndarray] = {}

    if fmt == "triplet":
        repeat = per_query[owner]
        pair = np.repeat(np.arange(len(owner)), repeat)
        q = owner[pair]
        neg_mask = found[owner]
        negs = sel.rows[owner][neg_mask]
        neg_pos = sel.positions[owner][neg_mask]
        if texts:
            text_cols = {"query": query_texts[cand.query_rows[q]], "positive": doc_texts[cand.pos_rows[pair]],
                         "negative": doc_texts[negs]}
        cols = {"query_id": query_ids[cand.query_rows[q]], "positive_id": doc_ids[cand.pos_rows[pair]],
                "negative_id": doc_ids[negs], "positive_score": cand.pos_scores[pair],
                "negative_score": sel.scores[owner][neg_mask], "negative_rank": (neg_pos + 1).astype(np.int64)}
        return {**text_cols, **cols}, 0

    if fmt == "n-tuple":
        complete = per_query[owner] >= n
        pairs = np.flatnonzero(complete)
        q = owner[pairs]
        if texts:
            text_cols = {"query": query_texts[cand.query_rows[q]], "positive": doc_texts[cand.pos_rows[pairs]],
                         **{f"negative_{j + 1}": doc_texts[sel.rows[q, j]] for j in range(n)}}
        cols = {"query_id": query_ids[cand.query_rows[q]], "positive_id": doc_ids[cand.pos_rows[pairs]],
                **{f"negative_{j + 1}_id": doc_ids[sel.rows[q, j]] for j in range(n)},
                "positive_score": cand.pos_scores[pairs],
                **{f"negative_{j + 1}_score": sel.scores[q, j] for j in range(n)}}
        return {**text_cols, **cols}, int((~complete).sum())

    if fmt == "labeled-pair":
        q_list: list[int] = []
        d_list: list[int] = []
        labels: list[int] = []
        scores: list[float] = []
        for i in range(cand.queries):
            lo, hi = cand.pos_ptr[i], cand.pos_ptr[i + 1]
            for j in range(lo, hi):
                q_list.append(i), d_list.append(int(cand.pos_rows[j])), labels.append(1)
                scores.append(float(cand.pos_scores[j]))
            for j in np.flatnonzero(found[i]):
                q_list.append(i), d_list.append(int(sel.rows[i, j])), labels.append(0)
                scores.append(float(sel.scores[i, j]))
        qa = cand.query_rows[np.asarray(q_list, dtype=np.int64)]
        da = np.asarray(d_list, dtype=np.int64)
        if texts:
            text_cols = {"query": query_texts[qa], "positive": doc_texts[da]}
        label_cols = {"label": np.asarray(labels, dtype=np.int64), "score": np.asarray(scores, dtype=np.float32)}
        id_cols = {"query_id": query_ids[qa], "doc_id": doc_ids[da]}
        if texts:  # st's order (anchor, passage, label, score), then the ids
            return {**text_cols, **label_cols, **id_cols}, 0
        return {**id_cols, **label_cols}, 0

    if fmt == "labeled-list":
        keep = per_query[owner] > 0
        pairs = np.flatnonzero(keep)
        q = owner[pairs]
        docs = [[int(cand.pos_rows[p]), *sel.rows[i][found[i]].tolist()] for p, i in zip(pairs, q)]
        scores_l = [[float(cand.pos_scores[p]), *sel.scores[i][found[i]].astype(float).tolist()]
                    for p, i in zip(pairs, q)]
        labels_l = [[1] + [0] * int(per_query[i]) for i in q]
        if texts:
            text_cols = {"query": query_texts[cand.query_rows[q]],
                         "positive": _objects([doc_texts[np.asarray(d)].tolist() for d in docs])}
        label_cols = {"labels": _objects(labels_l), "scores": _objects(scores_l)}
        id_cols = {"query_id": query_ids[cand.query_rows[q]],
                   "doc_ids": _objects([doc_ids[np.asarray(d)].tolist() for d in docs])}
        if texts:
            return {**text_cols, **label_cols, **id_cols}, int((~keep).sum())
        return {**id_cols, **label_cols}, int((~keep).sum())

    if fmt == "flagembedding":
        assert query_texts is not None and doc_texts is not None
        keep = np.flatnonzero(per_query > 0)
        pos = [cand.pos_rows[cand.pos_ptr[i]:cand.pos_ptr[i + 1]] for i in keep]
        neg = [sel.rows[i][found[i]] for i in keep]
        cols = {
            "query": query_texts[cand.query_rows[keep]],
            "pos": _objects([doc_texts[p].tolist() for p in pos]),
            "neg": _objects([doc_texts[d].tolist() for d in neg]),
            "pos_scores": _objects([cand.pos_scores[cand.pos_ptr[i]:cand.pos_ptr[i + 1]].astype(float).tolist()
                                    for i in keep]),
            "neg_scores": _objects([sel.scores[i][found[i]].astype(float).tolist() for i in keep]),
            "query_id": query_ids[cand.query_rows[keep]],
            "pos_ids": _objects([doc_ids[p].tolist() for p in pos]),
            "neg_ids": _objects([doc_ids[d].tolist() for d in neg]),
        }
        return cols, int(cand.queries - len(keep))
    raise OptionError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")


def check_format_output(fmt: OutputFormat, path: str) -> None:
    """Refuse a format the output file type cannot hold."""
    from embedkit.output import table_format

    kind = table_format(path)
    if fmt == "flagembedding" and kind != "jsonl":
        raise OptionError(f"{path}: --format flagembedding writes JSON lines; name the output .jsonl")
    if fmt == "labeled-list" and kind == "csv":
        raise OptionError(f"{path}: --format labeled-list has list columns; write .parquet or .jsonl")


def provenance_path(path: str) -> str:
    """The JSON sidecar of a CSV / JSON lines output: ``OUT.provenance.json``."""
    return f"{path}.provenance.json"


def write_training_file(columns: Mapping[str, np.ndarray], path: str, *, provenance: Mapping[str, Any],
                        inputs: list[str | None]) -> str | None:
    """Write the columns atomically; provenance goes into the Parquet metadata, or into
    ``OUT.provenance.json`` next to a CSV / JSON lines file (returned)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedkit.output import atomic_output, check_output_path, table_format, write_table

    fmt = table_format(path)
    text = json.dumps(provenance, default=str)
    if fmt == "parquet":
        check_output_path(path, inputs)
        table = pa.table({name: _arrow(values) for name, values in columns.items()})
        table = table.replace_schema_metadata({PROVENANCE_KEY: text.encode()})
        with atomic_output(path) as temporary:
            pq.write_table(table, temporary)
        return None
    write_table(dict(columns), path, inputs=inputs)
    if path == "-":
        return None
    sidecar = provenance_path(path)
    check_output_path(sidecar, inputs)
    with atomic_output(sidecar) as temporary:
        Path(temporary).write_text(text + "\n")
    return sidecar


def _arrow(values: np.ndarray) -> Any:
    import pyarrow as pa

    array = np.asarray(values)
    if array.dtype == object:
        return pa.array(array.tolist())
    return pa.array(array)


# -- candidates file -----------------------------------------------------------------------------

def save_candidates(cand: Candidates, path: str, *, query_ids: np.ndarray, doc_ids: np.ndarray,
                    provenance: Mapping[str, Any], inputs: list[str | None]) -> None:
    """Each query's candidate list and positives, one row per (query, document), Parquet.

    Columns: ``query_id, query_row, doc_id, doc_row, score, rank`` (1-based position in the
    list, 0 for a positive outside it), ``positive`` (bool), ``relevance`` (0 for
    non-positives), ``max_positive_similarity`` (NaN when not computed), ``depth`` (documents
    the query's list holds). The schema metadata ``embedkit.candidates`` records the metric,
    corpus size, window and provenance.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedkit.output import atomic_output, check_output_path, table_format

    if table_format(path) != "parquet":
        raise OptionError(f"{path}: --save-candidates writes Parquet; name it .parquet")
    check_output_path(path, inputs)
    m = cand.queries
    is_pos = cand.is_positive()
    q_idx, col = cand.owners()
    counts = cand.positives_per_query
    owner = np.repeat(np.arange(m), counts)
    # Positives missing from their query's list get a row of their own (rank 0).
    key_list = q_idx * (cand.corpus_rows + 1) + cand.rows
    key_pos = owner.astype(np.int64) * (cand.corpus_rows + 1) + cand.pos_rows
    extra = np.flatnonzero(~np.isin(key_pos, key_list))
    qi = np.concatenate([q_idx, owner[extra]]).astype(np.int64)
    docs = np.concatenate([cand.rows, cand.pos_rows[extra]]).astype(np.int64)
    scores = np.concatenate([cand.scores, cand.pos_scores[extra]]).astype(np.float32)
    rank = np.concatenate([col + 1, np.zeros(len(extra), dtype=np.int64)]).astype(np.int64)
    positive = np.concatenate([is_pos, np.ones(len(extra), dtype=bool)])
    # A positive's score is its exact pair score (the one the margins use), listed or not.
    order_pos = np.argsort(key_pos, kind="stable")
    found = np.searchsorted(key_pos[order_pos], qi * (cand.corpus_rows + 1) + docs)
    where = order_pos[found.clip(0, len(key_pos) - 1)]
    scores = np.where(positive, cand.pos_scores[where], scores).astype(np.float32)
    relevance = np.where(positive, cand.pos_relevance[where].astype(np.float64), 0.0)
    sims = cand.positive_similarity
    sim = np.concatenate([sims if sims is not None else np.full(len(q_idx), np.nan, np.float32),
                          np.full(len(extra), np.nan, np.float32)]).astype(np.float32)
    order = np.lexsort((rank == 0, rank, qi))
    qrow = cand.query_rows[qi]
    table = pa.table({
        "query_id": pa.array(np.asarray(query_ids)[qrow][order]), "query_row": qrow[order],
        "doc_id": pa.array(np.asarray(doc_ids)[docs][order]), "doc_row": docs[order], "score": scores[order],
        "rank": rank[order], "positive": positive[order], "relevance": relevance[order],
        "max_positive_similarity": sim[order], "depth": cand.depth[qi][order],
    })
    meta = {"metric": cand.metric, "corpus_rows": cand.corpus_rows, "window": cand.window,
            "has_positive_similarity": sims is not None, "approximate": cand.approximate,
            "provenance": dict(provenance)}
    table = table.replace_schema_metadata({CANDIDATES_KEY: json.dumps(meta, default=str).encode()})
    with atomic_output(path) as temporary:
        pq.write_table(table, temporary)


def load_candidates(path: str) -> tuple[Candidates, dict[int, Any], dict[int, Any], dict[str, Any]]:
    """Read a ``--save-candidates`` file back: candidate lists, the ids of the query rows and
    corpus rows it names (row -> id) and its metadata."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"{path}: not a candidates Parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(CANDIDATES_KEY)
    if raw is None:
        raise InputError(f"{path}: not a candidates file (no '{CANDIDATES_KEY.decode()}' metadata); "
                         "write one with --save-candidates")
    meta = json.loads(raw)
    missing = [name for name in ("query_row", "doc_row", "score", "rank", "positive", "relevance",
                                 "max_positive_similarity", "depth") if name not in table.column_names]
    if missing:
        raise InputError(f"{path}: not a candidates file: missing column {missing[0]!r}")
    qrow = table["query_row"].to_numpy().astype(np.int64)
    docs = table["doc_row"].to_numpy().astype(np.int64)
    scores = table["score"].to_numpy().astype(np.float32)
    rank = table["rank"].to_numpy().astype(np.int64)
    positive = table["positive"].to_numpy(zero_copy_only=False).astype(bool)
    relevance = table["relevance"].to_numpy().astype(np.float64)
    sims = table["max_positive_similarity"].to_numpy().astype(np.float32)
    depth_col = table["depth"].to_numpy().astype(np.int64)
    query_rows, inverse = np.unique(qrow, return_inverse=True)
    m = len(query_rows)
    listed = np.flatnonzero(rank > 0)
    listed = listed[np.lexsort((rank[listed], inverse[listed]))]
    lengths = np.bincount(inverse[listed], minlength=m).astype(np.int64)
    list_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    depth = np.zeros(m, dtype=np.int64)
    depth[inverse] = depth_col
    order = np.lexsort((docs[positive], inverse[positive]))
    pos_q = inverse[positive][order]
    pos_ptr = np.searchsorted(pos_q, np.arange(m + 1)).astype(np.int64)
    metric: RetrievalMetric = meta["metric"]
    cand = Candidates(query_rows=query_rows, list_ptr=list_ptr, rows=docs[listed], scores=scores[listed],
                      depth=depth, pos_ptr=pos_ptr,
                      pos_rows=docs[positive][order], pos_scores=scores[positive][order],
                      pos_relevance=relevance[positive][order], corpus_rows=int(meta["corpus_rows"]),
                      metric=metric, window=meta.get("window"),
                      positive_similarity=sims[listed] if meta.get("has_positive_similarity") else None,
                      approximate=bool(meta.get("approximate")))
    qids = dict(zip(qrow.tolist(), table["query_id"].to_pylist()))
    dids = dict(zip(docs.tolist(), table["doc_id"].to_pylist()))
    return cand, qids, dids, meta
