"""One retrieval mining run end to end: read inputs and qrels, mine, write the files.

This is the single library call behind ``embedkit mine CORPUS --queries Q --qrels R``
and ``embedkit mine --from-candidates FILE``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.mining.retrieval import (
    RetrievalMining,
    SearchSpec,
    mine_from_candidates,
    mine_retrieval,
)
from embedkit.mining.retrieval_output import (
    OutputFormat,
    check_format_output,
    load_candidates,
    save_candidates,
    training_columns,
    write_training_file,
)
from embedkit.mining.retrieval_select import SelectionSpec


@dataclass(frozen=True)
class RetrievalJob:
    """Everything a retrieval mining run needs (paths and specs)."""

    corpus: str | None
    queries: str | None
    qrels: str | None
    selection: SelectionSpec
    search: SearchSpec
    from_candidates: str | None = None
    column: str | None = None
    id_column: str | None = None
    query_id_column: str | None = None
    text_column: str | None = None
    ignore_missing: bool = False
    margins: tuple[float, ...] = ()
    output: str | None = None
    fmt: OutputFormat = "triplet"
    save_candidates: str | None = None


@dataclass(frozen=True)
class RetrievalRun:
    """The mining result and what was written."""

    result: RetrievalMining
    inputs: dict[str, Any]
    output: str | None = None
    output_rows: int = 0
    left_out: int = 0
    provenance_file: str | None = None
    candidates_file: str | None = None
    preview: dict[str, np.ndarray] = field(default_factory=dict)


def _ids(dataset: Any) -> np.ndarray:
    return dataset.ids if dataset.ids is not None else np.arange(dataset.rows, dtype=np.int64)


def _texts(path: str, column: str, rows: int) -> np.ndarray:
    """A text column of a Parquet input, as an object array of ``rows`` strings."""
    from embedkit.formats import PARQUET_MAGIC, read_head
    from embedkit.labelfile import ParquetSource

    if read_head(path, 4) != PARQUET_MAGIC:
        raise InputError(f"{path}: --text-column needs Parquet input (the texts live in a column)")
    values = ParquetSource(path, path).column(column)
    if len(values) != rows:
        raise InputError(f"{path}: text column '{column}' has {len(values)} rows but the embeddings have {rows}")
    return np.asarray(values, dtype=object)


def _provenance(job: RetrievalJob, result: RetrievalMining) -> dict[str, Any]:
    import embedkit

    return {
        "embedkit_version": embedkit.__version__,
        "command": "mine (retrieval)",
        "inputs": {"corpus": job.corpus, "queries": job.queries, "qrels": job.qrels,
                   "from_candidates": job.from_candidates, "column": job.column, "id_column": job.id_column,
                   "query_id_column": job.query_id_column, "text_column": job.text_column},
        "parameters": {**asdict(job.selection), "metric": result.candidates.metric, "index": job.search.index,
                       "format": job.fmt, "ignore_missing": job.ignore_missing},
        "search": result.search,
        "certain": result.certainty.get("certain", True),
    }


def run_retrieval_mining(job: RetrievalJob, *, execution: Execution = Execution()) -> RetrievalRun:
    """Read, mine, write (the output and ``--save-candidates`` are atomic). ``execution`` runs
    the exact search's query blocks (default: threads on every core) and bounds every block."""
    from embedkit.io import load_dataset
    from embedkit.output import check_output_path, table_format

    guarded = [p for p in (job.corpus, job.queries, job.qrels, job.from_candidates) if p]
    for target in (job.output, job.save_candidates):
        if target is not None:
            check_output_path(target, guarded)
    if job.output is not None:
        check_format_output(job.fmt, job.output)
    if job.save_candidates is not None:
        if job.save_candidates == job.output:
            raise OptionError("--save-candidates and -o name the same file")
        if table_format(job.save_candidates) != "parquet":
            raise OptionError(f"{job.save_candidates}: --save-candidates writes Parquet; name it .parquet")

    corpus = queries = None
    if job.corpus is not None:
        corpus = load_dataset(job.corpus, column=job.column, id_column=job.id_column)
    if job.queries is not None:
        queries = load_dataset(job.queries, column=job.column, id_column=job.query_id_column or job.id_column)
    query_texts = doc_texts = None
    if job.text_column is not None:
        if corpus is None or queries is None:
            raise OptionError("--text-column reads the texts from CORPUS and --queries; give both")
        doc_texts = _texts(job.corpus or "", job.text_column, corpus.rows)
        query_texts = _texts(job.queries or "", job.text_column, queries.rows)

    inputs: dict[str, Any] = {}
    if job.from_candidates is not None:
        cand, qid_map, did_map, _meta = load_candidates(job.from_candidates)
        if corpus is not None and corpus.rows != cand.corpus_rows:
            raise InputError(f"{job.corpus}: {corpus.rows} rows but the candidates were mined on "
                             f"{cand.corpus_rows}")
        mined_queries = int(cand.query_rows.max()) + 1 if len(cand.query_rows) else 0
        if queries is not None and queries.rows < mined_queries:
            raise InputError(f"{job.queries}: {queries.rows} rows but the candidates name query row "
                             f"{mined_queries - 1}; give the queries they were mined with")
        result = mine_from_candidates(cand, job.selection, margins=job.margins, source=job.from_candidates,
                                      budget_mib=execution.budget_mib)
        n_q = int(max(qid_map)) + 1 if qid_map else 0
        query_ids = _lookup_ids(qid_map, n_q if queries is None else queries.rows)
        doc_ids = _lookup_ids(did_map, cand.corpus_rows)
        if queries is not None:
            query_ids = _ids(queries)
        if corpus is not None:
            doc_ids = _ids(corpus)
        inputs["candidates"] = {"source": job.from_candidates, "queries": cand.queries}
    else:
        from embedkit.qrels import read_qrels, resolve_qrels

        if corpus is None or queries is None or job.qrels is None:
            raise OptionError("retrieval mining needs CORPUS, --queries and --qrels (or --from-candidates FILE)")
        qrels = read_qrels(job.qrels)
        judged = resolve_qrels(qrels, queries.ids, corpus.ids, n_queries=queries.rows, n_docs=corpus.rows,
                               ignore_missing=job.ignore_missing, query_source=queries.source,
                               doc_source=corpus.source)
        result = mine_retrieval(corpus.embeddings, queries.embeddings,
                                (judged.query_rows, judged.doc_rows, judged.relevance), job.selection, job.search,
                                margins=job.margins, execution=execution,
                                keep_positive_similarity=job.save_candidates is not None,
                                qrels_info={"source": qrels.source, "dropped_missing": judged.dropped})
        query_ids, doc_ids = _ids(queries), _ids(corpus)
        inputs["qrels"] = result.qrels
    for name, data in (("corpus", corpus), ("queries", queries)):
        if data is not None:
            inputs[name] = {"source": data.source, "rows": data.rows, "dim": data.dim,
                            "dtype": str(data.embeddings.dtype)}

    provenance = _provenance(job, result)
    written: dict[str, Any] = {}
    if job.save_candidates is not None:
        save_candidates(result.candidates, job.save_candidates, query_ids=query_ids, doc_ids=doc_ids,
                        provenance=provenance, inputs=guarded)
        written["candidates_file"] = job.save_candidates
    columns, left_out = training_columns(result, job.fmt, query_ids=query_ids, doc_ids=doc_ids,
                                         query_texts=query_texts, doc_texts=doc_texts)
    rows = len(next(iter(columns.values()))) if columns else 0
    if job.output is not None:
        written["provenance_file"] = write_training_file(columns, job.output, provenance=provenance,
                                                         inputs=guarded)
    preview = {k: v[:5] for k, v in columns.items()}
    return RetrievalRun(result=result, inputs=inputs, output=job.output, output_rows=rows, left_out=left_out,
                        preview=preview, **written)


def _lookup_ids(mapping: dict[int, Any], size: int) -> np.ndarray:
    """Row -> id for the rows a candidates file names (others: their row number)."""
    out = np.arange(size, dtype=np.int64).astype(object)
    for row, value in mapping.items():
        if 0 <= row < size:
            out[row] = value
    values = list(mapping.values())
    if values and all(isinstance(v, (int, np.integer)) for v in values):
        return out.astype(np.int64)
    return out
