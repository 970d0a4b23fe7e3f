"""One IR evaluation end to end: read the qrels and either the embeddings or a run file,
rank and score, write the per-query table and the run file.

This is the single library call behind ``embedkit eval CORPUS --queries Q --qrels R`` and
``embedkit eval --from-run RUN --qrels R``.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedkit.choices import DEFAULT_IR_KS, RankingMetric
from embedkit.dataset import Dataset
from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.formats import STDIN
from embedkit.io import load_dataset
from embedkit.ireval import IRResult, evaluate_qrels, evaluate_run, read_run, write_run
from embedkit.output import (
    check_output_path,
    guarded_inputs,
    refuse_output_in_shard_sets,
    table_format,
    write_table,
)
from embedkit.qrels import read_qrels


@dataclass(frozen=True)
class IRJob:
    """Everything one IR evaluation needs: paths, cut-offs and the ranking metric.

    With ``from_run`` the run file is scored and ``corpus``/``queries`` must be ``None``;
    otherwise ``queries`` are ranked exactly against ``corpus`` (``-`` is stdin)."""

    qrels: str
    corpus: str | None = None
    queries: str | None = None
    from_run: str | None = None
    ks: tuple[int, ...] = DEFAULT_IR_KS
    metric: RankingMetric = "cosine"
    column: str | None = None
    id_column: str | None = None
    query_id_column: str | None = None
    ignore_missing: bool = False
    per_query: str | None = None
    run: str | None = None


@dataclass(frozen=True)
class IREvaluation:
    """The figures, the datasets they were measured on (``None`` for a run file) and the
    files written, as ``(path, what)``."""

    result: IRResult
    corpus: Dataset | None
    queries: Dataset | None
    written: tuple[tuple[str, str], ...] = ()


def check_ir_job(job: IRJob) -> list[str]:
    """Refuse a job that cannot run, before any work; returns the files outputs must not overwrite."""
    named = {"the corpus": job.corpus, "--queries": job.queries, "--qrels": job.qrels, "--from-run": job.from_run}
    from_stdin = [name for name, value in named.items() if value == STDIN]
    if len(from_stdin) > 1:
        raise OptionError(f"only one input can be read from stdin ('-'); got {' and '.join(from_stdin)}")
    if job.from_run is None and job.queries is None:
        raise OptionError("--qrels needs --queries QUERIES (the query embeddings; EMB is the corpus)")
    inputs = guarded_inputs([job.corpus, job.queries], [job.qrels, job.from_run])
    for name, path in (("--run", job.run), ("--per-query", job.per_query)):
        if path == STDIN:
            raise OptionError(f"{name} -: give a file name (stdout carries the figures)")
        if path is not None:
            check_output_path(path, inputs)
            refuse_output_in_shard_sets(path, [job.corpus, job.queries])
    if job.per_query is not None:
        table_format(job.per_query)
    return inputs


def run_ir_eval(job: IRJob, *, execution: Execution = Execution()) -> IREvaluation:
    """Check, evaluate and write: see :class:`IRJob`. Outputs are written atomically;
    ``execution`` runs the ranking and bounds every block."""
    inputs = check_ir_job(job)
    if job.from_run is not None:
        result = evaluate_run(read_run(job.from_run), read_qrels(job.qrels), ks=job.ks,
                              per_query=job.per_query is not None, budget_mib=execution.budget_mib)
        corpus = queries = None
    else:
        judgements = read_qrels(job.qrels)
        corpus = load_dataset(job.corpus, column=job.column, id_column=job.id_column)
        queries = load_dataset(job.queries, column=job.column, id_column=job.query_id_column or job.id_column)
        result = evaluate_qrels(corpus, queries, judgements, ks=job.ks, metric=job.metric,
                                ignore_missing=job.ignore_missing, per_query=job.per_query is not None,
                                keep_run=job.run is not None, execution=execution)
    written = []
    if job.per_query is not None and result.per_query is not None:
        write_table(result.per_query, job.per_query, inputs=inputs)
        written.append((job.per_query, f"{len(next(iter(result.per_query.values()))):,} rows"))
    if job.run is not None and result.run is not None:
        lines = write_run(result.run, job.run, inputs=tuple(inputs))
        written.append((job.run, f"{lines:,} lines"))
    return IREvaluation(result, corpus, queries, tuple(written))
