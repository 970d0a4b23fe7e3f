"""``embedkit check``: a CI gate. Requirements over eval / inspect / loss figures; exit 1 when one fails."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from embedkit.choices import (
    DEFAULT_BUDGET_MIB,
    DEFAULT_EXACT_PAIRS,
    DEFAULT_SAMPLE,
    DEFAULT_SEED,
    ContrastiveForm,
)

from . import options as opt
from .errors import EXIT_CHECK_FAILED, reported_errors
from .options import refuse_given

EPILOG = """Requirement: NAME OP VALUE, OP one of >= <= > < == (quote it in the shell).
Figures: precision_at_1, r_precision, map_at_r, recall_at_K (eval); contrastive_loss,
triplet_loss, npair_loss, infonce_loss, supcon_loss, bce_loss (loss); rows, dim,
nan_rows, inf_rows, zero_rows, norm_min, norm_max, duplicate_rows, classes,
overlap, suggested_margin, ... (inspect; the full list: README, `embedkit check`).
With --queries and --qrels: ndcg_at_K, mrr_at_K, map_at_K, recall_at_K, precision_at_K.
Exit 0: all hold; 1: one fails; 2: bad requirement or input.

Examples:
  embedkit check emb.npy --require 'precision_at_1>=0.9' -r 'nan_rows==0'
  embedkit check emb.npy -r 'contrastive_loss<=0.2' -m 1.0 --junit check.xml
  embedkit check emb.parquet --baseline emb.npy --max-drop precision_at_1=0.01
  embedkit check ir/corpus.parquet --queries ir/queries.parquet \\
      --qrels ir/qrels.tsv --id-column id -r 'ndcg_at_10>=0.45'
"""


def check(
    ctx: typer.Context,
    embeddings: opt.EmbeddingsArg = None,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", metavar="FILE", rich_help_panel=opt.INPUT,
        help="An earlier export of the same rows (labels: its own, else EMB's).")] = None,
    column: opt.ColumnOpt = None,
    normalize: opt.NormalizeOpt = False,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    require: Annotated[Optional[list[str]], typer.Option(
        "--require", "-r", metavar="EXPR", rich_help_panel=opt.FILTERS, show_default=False,
        help="NAME OP VALUE, e.g. 'precision_at_1>=0.9' (repeatable).")] = None,
    max_drop: Annotated[Optional[list[str]], typer.Option(
        "--max-drop", metavar="NAME=FLOAT", rich_help_panel=opt.FILTERS, show_default=False,
        help="At most this much worse than --baseline (repeatable).")] = None,
    metric: opt.RankingMetricOpt = None,
    exact_pairs: opt.ExactPairsOpt = DEFAULT_EXACT_PAIRS,
    sample: opt.SampleOpt = DEFAULT_SAMPLE,
    seed: opt.SeedOpt = DEFAULT_SEED,
    margin: Annotated[float, typer.Option(
        "--margin", "-m", metavar="FLOAT", rich_help_panel=opt.LOSS,
        help="Loss figures: margin (contrastive, triplet).")] = 1.0,
    temperature: Annotated[Optional[float], typer.Option(
        "--temperature", "-t", metavar="FLOAT", rich_help_panel=opt.LOSS, show_default=False,
        help="Loss figures: τ of infonce (0.07) and supcon (0.1).")] = None,
    form: Annotated[ContrastiveForm, typer.Option(
        "--form", metavar="FORM", rich_help_panel=opt.LOSS,
        help="contrastive_loss form: squared, halved or linear.")] = "squared",
    squared: Annotated[bool, typer.Option(
        "--squared/--no-squared", metavar=opt.FLAG, rich_help_panel=opt.LOSS,
        help="triplet_loss on squared distances.")] = True,
    scale: Annotated[float, typer.Option(
        "--scale", metavar="FLOAT", rich_help_panel=opt.LOSS, help="bce_loss: logit scale.")] = 10.0,
    bias: Annotated[float, typer.Option(
        "--bias", metavar="FLOAT", rich_help_panel=opt.LOSS, help="bce_loss: logit bias.")] = -10.0,
    queries: opt.QueriesOpt = None,
    qrels: opt.QrelsOpt = None,
    baseline_queries: Annotated[Optional[str], typer.Option(
        "--baseline-queries", metavar="FILE", rich_help_panel=opt.QRELS, show_default=False,
        help="With --qrels and --baseline: the baseline model's queries.")] = None,
    id_column: opt.IdColumnOpt = None,
    query_id_column: opt.QueryIdColumnOpt = None,
    ignore_missing: opt.IgnoreMissingOpt = False,
    junit: Annotated[Optional[str], typer.Option(
        "--junit", metavar="FILE", rich_help_panel=opt.OUTPUT,
        help="Also a JUnit XML report (one test case per requirement).")] = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    budget_mib: opt.BudgetOpt = DEFAULT_BUDGET_MIB,
) -> None:
    """Check requirements on an embedding export: exit 0 when all hold, 1 when one fails.

    NaN/Inf rows are counted (nan_rows), not refused; eval and loss figures fail on them.
    """
    from embedkit.checks import (
        CheckSettings,
        RetrievalCheck,
        figure_source,
        parse_max_drops,
        parse_requirements,
        run_check,
        write_junit,
    )
    from embedkit.errors import OptionError
    from embedkit.execution import Execution
    from embedkit.inspection import FIGURE_PARTS
    from embedkit.io import load_allowing_nonfinite
    from embedkit.losses.spec import LossSpec
    from embedkit.output import check_output_path
    from embedkit.qrels import read_qrels

    from .inputs import (
        guarded_inputs,
        load_inputs,
        refuse_output_in_shard_sets,
        resolve_embeddings,
    )
    from .render import check as render
    from .render import wrote

    with reported_errors():
        execution = Execution.local(workers, budget_mib=budget_mib)
        retrieval_mode = qrels is not None
        if not retrieval_mode:
            for name, value in (("--queries", queries), ("--baseline-queries", baseline_queries),
                                ("--id-column", id_column), ("--query-id-column", query_id_column),
                                ("--ignore-missing", ignore_missing or None)):
                if value is not None:
                    raise OptionError(f"{name} applies to IR figures: give --qrels too")
            if metric == "dot":
                raise OptionError("--metric dot applies to IR figures (with --qrels)")
        elif queries is None:
            raise OptionError("--qrels needs --queries QUERIES (the query embeddings; EMB is the corpus)")
        requirements = parse_requirements(require or (), qrels=retrieval_mode)
        drops = parse_max_drops(max_drop or (), qrels=retrieval_mode)
        spec = LossSpec(kind="contrastive", margin=margin, temperature=temperature, form=form, squared=squared,
                        scale=scale, bias=bias, normalize=normalize).validated()
        names = [r.name for r in requirements] + [d.name for d in drops]
        sources = {figure_source(name, qrels=retrieval_mode) for name in names}
        distances = any(FIGURE_PARTS.get(name) == "distances" for name in names)
        refuse_given(ctx, "these requirements (no loss figure)",
                     dict.fromkeys(("margin", "temperature", "form", "squared", "scale", "bias"), "loss" in sources))
        refuse_given(ctx, "these requirements (no eval or IR figure)", {"metric": bool(sources & {"eval", "qrels"})})
        refuse_given(ctx, "these requirements (no distance figure)",
                     dict.fromkeys(("exact_pairs", "sample", "seed"), distances))
        path = resolve_embeddings(embeddings)
        if junit is not None:
            check_output_path(junit, guarded_inputs([path, baseline, queries, baseline_queries], [labels, qrels]))
            refuse_output_in_shard_sets(junit, [path, baseline, queries, baseline_queries])
        retrieval = None
        if retrieval_mode:
            assert qrels is not None and queries is not None
            retrieval = RetrievalCheck(
                queries=load_inputs(queries, column=column, id_column=query_id_column or id_column),
                qrels=read_qrels(qrels),
                baseline_queries=load_inputs(baseline_queries, column=column, id_column=query_id_column or id_column)
                if baseline_queries else None,
                metric=metric or "cosine", ignore_missing=ignore_missing)
        settings = CheckSettings(metric="euclidean" if metric in (None, "dot") else metric, loss=spec,
                                 exact_pairs=exact_pairs, sample=sample, seed=seed, retrieval=retrieval)
        loaded = load_allowing_nonfinite(path, column=column, label_column=label_column, labels_path=labels,
                                         id_column=id_column)
        old = load_allowing_nonfinite(baseline, column=column, label_column=label_column,
                                      id_column=id_column) if baseline else None
        report = run_check(loaded, requirements, baseline=old, max_drops=drops, settings=settings,
                           execution=execution)
        if junit is not None:
            write_junit(report, junit)
            wrote(junit, f"{len(report.outcomes):,} test cases", quiet=quiet)
    render.report(report, as_json=json, dataset=loaded.dataset)
    if not report.passed:
        render.failure_summary(report)
        raise typer.Exit(EXIT_CHECK_FAILED)
