"""``embedkit eval``: retrieval metrics (precision@1, R-precision, MAP@R, recall@k) from exact k-NN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from embedkit.choices import DEFAULT_BUDGET_MIB, DEFAULT_IR_KS, DEFAULT_KS
from embedkit.errors import OptionError

from . import options as opt
from .errors import reported_errors

if TYPE_CHECKING:
    from embedkit.dataset import Dataset

EPILOG = """Figures (pytorch-metric-learning's definitions; README, `embedkit eval`):
  precision_at_1  the nearest neighbour has the query's label
  r_precision     same-label share of the R nearest (R = same-label rows)
  map_at_r        mean average precision over the R nearest
  recall_at_k     at least one same-label row among the k nearest
With --qrels: ndcg_at_K, mrr_at_K, map_at_K, recall_at_K, precision_at_K.

Examples:
  embedkit eval emb.npy
  embedkit eval emb.parquet --metric cosine -k 1,10,100 --json
  embedkit eval --queries emb.parquet --reference emb.npy --per-class
  embedkit eval ir/corpus.parquet --queries ir/queries.parquet \\
      --qrels ir/qrels.tsv --id-column id -k 10 --run run.txt
  embedkit eval --qrels ir/qrels.tsv --from-run run.txt
"""


def load_split(
    embeddings: str | None, queries: str | None, reference: str | None, query_labels: str | None,
    *, labels: str | None, column: str | None, label_column: str | None,
) -> tuple[Dataset, Dataset | None]:
    """``(reference, queries)``: EMB alone (every row a query), or ``--queries`` against
    ``--reference`` (or against EMB)."""
    if reference is not None and embeddings is not None:
        raise OptionError("give the reference set as EMB or as --reference, not both")
    if reference is not None and queries is None:
        raise OptionError("--reference needs --queries (without it every row of EMB is a query)")
    if query_labels is not None and queries is None:
        raise OptionError("--query-labels needs --queries")
    from .inputs import load_inputs

    if queries is None:
        return load_inputs(embeddings, labels=labels, column=column, label_column=label_column), None
    reference_path = reference if reference is not None else embeddings
    named = (("--queries", queries), ("--query-labels", query_labels), ("--labels", labels),
             ("the reference", reference_path or "-"))
    from_stdin = [name for name, value in named if value == "-"]
    if len(from_stdin) > 1:
        raise OptionError(f"only one input can be read from stdin ('-'); got {' and '.join(from_stdin)}")
    ref = load_inputs(reference if reference is not None else embeddings, labels=labels, column=column,
                      label_column=label_column)
    qry = load_inputs(queries, labels=query_labels, column=column, label_column=label_column)
    return ref, qry


def eval_(
    embeddings: opt.EmbeddingsArg = None,
    queries: opt.QueriesOpt = None,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", metavar="FILE", rich_help_panel=opt.INPUT,
        help="Reference (gallery) with --queries; the same as giving EMB.")] = None,
    column: opt.ColumnOpt = None,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    query_labels: Annotated[Optional[str], typer.Option(
        "--query-labels", metavar="FILE", rich_help_panel=opt.LABELS,
        help="Labels of --queries (default: its column or sidecar).")] = None,
    qrels: opt.QrelsOpt = None,
    id_column: opt.IdColumnOpt = None,
    query_id_column: opt.QueryIdColumnOpt = None,
    ignore_missing: opt.IgnoreMissingOpt = False,
    from_run: Annotated[Optional[str], typer.Option(
        "--from-run", metavar="FILE", rich_help_panel=opt.QRELS, show_default=False,
        help="With --qrels: evaluate this TREC run file instead of embeddings.")] = None,
    k: Annotated[Optional[list[str]], typer.Option(
        "--k", "-k", metavar="LIST", rich_help_panel=opt.SEARCH, show_default=False,
        help="Cut-offs, repeatable or comma-separated (default "
        f"{','.join(map(str, DEFAULT_KS))}; --qrels: {','.join(map(str, DEFAULT_IR_KS))}).")] = None,
    metric: opt.RankingMetricOpt = None,
    per_class: Annotated[bool, typer.Option(
        "--per-class", metavar=opt.FLAG, rich_help_panel=opt.OUTPUT,
        help="Also a table of the figures per label.")] = False,
    per_query: Annotated[Optional[str], typer.Option(
        "--per-query", metavar="FILE", rich_help_panel=opt.OUTPUT, show_default=False,
        help="With --qrels: every query's figures to FILE (.parquet, .csv, .jsonl).")] = None,
    run: Annotated[Optional[str], typer.Option(
        "--run", metavar="FILE", rich_help_panel=opt.OUTPUT, show_default=False,
        help="With --qrels: the ranking as a TREC run file (for trec_eval).")] = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    budget_mib: opt.BudgetOpt = DEFAULT_BUDGET_MIB,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Retrieval figures from exact k-NN: every row a query against the others (self excluded).

    With --qrels: EMB is the corpus, --queries the queries, graded IR figures (README).
    """
    from embedkit.execution import validated_budget
    from embedkit.metrics import evaluate_retrieval

    from .render import engine_text, running
    from .render import eval as render

    if qrels is not None or from_run is not None:
        with reported_errors():
            validated_budget(budget_mib)
            if qrels is None:
                raise OptionError("--from-run needs --qrels (the judgements to evaluate the run with)")
            for name, value in (("--reference", reference), ("--query-labels", query_labels), ("--labels", labels),
                                ("--label-column", label_column), ("--per-class", per_class or None)):
                if value is not None:
                    raise OptionError(f"{name} applies to label-based eval, not to --qrels")
            _qrels_eval(embeddings, queries, qrels, from_run=from_run, ks=_ks(k), metric=metric or "cosine",
                        column=column, id_column=id_column, query_id_column=query_id_column,
                        ignore_missing=ignore_missing, per_query=per_query, run=run, as_json=json, quiet=quiet,
                        workers=workers, budget_mib=budget_mib, engine=engine, scheduler=scheduler,
                        parts_dir=parts_dir)
        return
    with reported_errors():
        validated_budget(budget_mib)
        for name, value in (("--id-column", id_column), ("--query-id-column", query_id_column),
                            ("--per-query", per_query), ("--run", run), ("--ignore-missing", ignore_missing or None)):
            if value is not None:
                raise OptionError(f"{name} applies to retrieval with --qrels")
        if metric == "dot":
            raise OptionError("--metric dot applies to retrieval with --qrels; label eval ranks by euclidean or cosine")
        ks = _ks(k) or DEFAULT_KS
        reference_set, query_set = load_split(embeddings, queries, reference, query_labels,
                                              labels=labels, column=column, label_column=label_column)
        with running("eval", engine=engine, workers=workers, scheduler=scheduler,
                     parts_dir=parts_dir, budget_mib=budget_mib, quiet=quiet) as execution:
            result = evaluate_retrieval(reference_set, query_set, ks=ks, metric=metric or "euclidean",
                                        per_class=per_class, execution=execution)
            engine_used = engine_text(execution.engine)
    render.evaluation(result, reference_set, query_set, as_json=json, engine=engine_used)


def _ks(values: list[str] | None) -> tuple[int, ...]:
    """``--k 10 --k 100`` and ``--k 10,100`` alike; ``()`` when not given."""
    from .inputs import parse_ints

    return tuple(k for value in values or () for k in parse_ints(value, "--k"))


def _qrels_eval(
    embeddings: str | None, queries: str | None, qrels: str, *, from_run: str | None, ks: tuple[int, ...],
    metric: str, column: str | None, id_column: str | None, query_id_column: str | None, ignore_missing: bool,
    per_query: str | None, run: str | None, as_json: bool, quiet: bool, workers: int | None, budget_mib: float,
    engine: str, scheduler: str | None, parts_dir: str | None,
) -> None:
    from embedkit.execution import Execution
    from embedkit.ireval_job import IRJob, run_ir_eval

    from .inputs import resolve_embeddings
    from .render import ireval as render_ir
    from .render import running, wrote

    if from_run is not None:
        for name, value in (("EMB (the corpus)", embeddings), ("--queries", queries), ("--run", run),
                            ("--id-column", id_column), ("--query-id-column", query_id_column),
                            ("--column", column), ("--ignore-missing", ignore_missing or None),
                            ("--workers", workers), ("--engine", None if engine == "local" else engine)):
            if value is not None:
                raise OptionError(f"--from-run evaluates a run file without embeddings; drop {name}")
    job = IRJob(qrels=qrels, corpus=None if from_run is not None else resolve_embeddings(embeddings),
                queries=queries, from_run=from_run, ks=ks or DEFAULT_IR_KS, metric=metric,  # type: ignore[arg-type]
                column=column, id_column=id_column, query_id_column=query_id_column,
                ignore_missing=ignore_missing, per_query=per_query, run=run)
    if from_run is not None:
        evaluation = run_ir_eval(job, execution=Execution.local(budget_mib=budget_mib))
    else:
        with running("eval", engine=engine, workers=workers, scheduler=scheduler,
                     parts_dir=parts_dir, budget_mib=budget_mib, quiet=quiet) as execution:
            evaluation = run_ir_eval(job, execution=execution)
    for path, detail in evaluation.written:
        wrote(path, detail, quiet=quiet)
    render_ir.ir_evaluation(evaluation.result, evaluation.corpus, evaluation.queries, as_json=as_json)
