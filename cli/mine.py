"""``embedkit mine``: hard, semi-hard, batch-hard, easy and within-margin mining over a whole file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from embedkit.choices import (
    DEFAULT_BUDGET_MIB,
    DEFAULT_RETRIEVAL_NEGATIVES,
    Fallback,
    IndexKind,
    PositiveChoice,
    RankingMetric,
    Select,
    Strategy,
)
from embedkit.errors import OptionError
from embedkit.execution import validated_budget

from . import mine_retrieval
from . import options as opt
from .errors import reported_errors
from .options import refuse_given

EPILOG = """Strategies (d: Euclidean, or 1 − cos with --metric cosine; README, `embedkit mine`):
  hard           each anchor's K nearest negatives (K = --negatives)
  semi-hard      negatives with d_ap < d_an ≤ d_ap + margin (FaceNet)
  batch-hard     each anchor's farthest positive and nearest negative
  easy           negatives with d_an − d_ap > margin
  within-margin  negative pairs i < j with d < margin
Output columns: anchor, positive, negative, d_ap, d_an (or i, j, y, d).

Retrieval mode (--queries Q --qrels R; README, "Mining for retrieval training"):
  per query q, p = its lowest positive score:
  1. candidates: documents that are not positives of q (--range-max B: only
     among the top B + P_max documents; else the whole corpus, exactly)
  2. filters: --absolute-margin, --relative-margin, --max-score, --min-score,
     --max-positive-similarity
  3. survivors by score (ties: corpus row); skip --range-min A; ranks < B
  4. --negatives N taken: --sampling top, or random (seeded, never padded)

Examples:
  embedkit mine emb.npy -s semi-hard -m 0.2 -o triplets.parquet
  embedkit mine emb.npy -s hard -k 5 --positives nearest -o hard.csv
  embedkit mine emb.npy -s hard --index ivf --check-recall 1000 -o h.parquet
  embedkit mine emb.npy -s within-margin -m 0.5 -o pairs.csv --json
"""


def mine(
    ctx: typer.Context,
    embeddings: opt.EmbeddingsArg = None,
    column: opt.ColumnOpt = None,
    id_column: opt.IdColumnOpt = None,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    strategy: Annotated[Strategy, typer.Option(
        "--strategy", "-s", metavar="STRATEGY", rich_help_panel=opt.STRATEGY,
        help="hard, semi-hard, batch-hard, easy or within-margin (see below).")] = "semi-hard",
    margin: Annotated[float, typer.Option(
        "--margin", "-m", metavar="FLOAT", rich_help_panel=opt.STRATEGY,
        help="Band margin (semi-hard, easy, within-margin).")] = 1.0,
    negatives: Annotated[Optional[int], typer.Option(
        "--negatives", "-k", metavar="N", rich_help_panel=opt.STRATEGY, show_default=False,
        help="hard: negatives per anchor (default 1); retrieval: per query "
        f"({DEFAULT_RETRIEVAL_NEGATIVES}).")] = None,
    positives: Annotated[Optional[PositiveChoice], typer.Option(
        "--positives", metavar="WHICH", rich_help_panel=opt.STRATEGY, show_default=False,
        help="all, hardest, nearest or random (default: random; batch-hard: hardest).")] = None,
    positives_count: Annotated[int, typer.Option(
        "--positives-count", metavar="N", rich_help_panel=opt.STRATEGY,
        help="--positives random: how many per anchor.")] = 1,
    select: Annotated[Select, typer.Option(
        "--select", metavar="WHICH", rich_help_panel=opt.STRATEGY,
        help="semi-hard/easy: closest negative in the band per (a, p), or all.")] = "closest",
    fallback: Annotated[Fallback, typer.Option(
        "--fallback", metavar="HOW", rich_help_panel=opt.STRATEGY,
        help="semi-hard, empty band: none, hardest or tf-addons (README).")] = "none",
    squared: Annotated[bool, typer.Option(
        "--squared/--no-squared", metavar=opt.FLAG, rich_help_panel=opt.STRATEGY,
        help="semi-hard/easy bands on squared distances (FaceNet).")] = False,
    metric: Annotated[Optional[RankingMetric], typer.Option(
        "--metric", metavar="METRIC", rich_help_panel=opt.STRATEGY, show_default=False,
        help="euclidean (default) or cosine; retrieval: cosine (default) or dot.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", metavar="N", rich_help_panel=opt.STRATEGY, show_default=False,
        help="Mine exactly inside random batches of N rows (seeded).")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", metavar="N", rich_help_panel=opt.STRATEGY,
        help="Seed of random positives, batches and recall samples.")] = 0,
    index: Annotated[IndexKind, typer.Option(
        "--index", metavar="INDEX", rich_help_panel=opt.SEARCH,
        help="exact, hnsw, ivf, or auto (exact up to 200,000 rows).")] = "auto",
    check_recall: Annotated[int, typer.Option(
        "--check-recall", min=0, metavar="N", rich_help_panel=opt.SEARCH,
        help="Recall against an exact scan on N sampled anchors.")] = 0,
    nlist: Annotated[Optional[int], typer.Option(
        "--nlist", metavar="N", rich_help_panel=opt.SEARCH, show_default=False,
        help="IVF lists (default ≈ 4·√n).")] = None,
    nprobe: Annotated[Optional[int], typer.Option(
        "--nprobe", metavar="N", rich_help_panel=opt.SEARCH, show_default=False,
        help="IVF lists probed (default nlist/200, at least 32).")] = None,
    ef_search: Annotated[Optional[int], typer.Option(
        "--ef-search", metavar="N", rich_help_panel=opt.SEARCH, show_default=False,
        help="HNSW efSearch (default 64).")] = None,
    output: opt.OutputOpt = None,
    max_items: Annotated[int, typer.Option(
        "--max-items", metavar="N", rich_help_panel=opt.OUTPUT,
        help="Refuse to emit more items than N.")] = 50_000_000,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    budget_mib: opt.BudgetOpt = DEFAULT_BUDGET_MIB,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
    queries: opt.QueriesOpt = None,
    qrels: opt.QrelsOpt = None,
    query_id_column: opt.QueryIdColumnOpt = None,
    ignore_missing: opt.IgnoreMissingOpt = False,
    range_min: mine_retrieval.RangeMinOpt = 0,
    range_max: mine_retrieval.RangeMaxOpt = None,
    absolute_margin: mine_retrieval.AbsoluteMarginOpt = None,
    relative_margin: mine_retrieval.RelativeMarginOpt = None,
    max_score: mine_retrieval.MaxScoreOpt = None,
    min_score: mine_retrieval.MinScoreOpt = None,
    max_positive_similarity: mine_retrieval.MaxPositiveSimilarityOpt = None,
    sampling: mine_retrieval.SamplingOpt = "top",
    format_: mine_retrieval.FormatOpt = "triplet",
    text_column: mine_retrieval.TextColumnOpt = None,
    save_candidates: mine_retrieval.SaveCandidatesOpt = None,
    from_candidates: mine_retrieval.FromCandidatesOpt = None,
    relative_margins: mine_retrieval.RelativeMarginsOpt = None,
) -> None:
    """Mine triplets or negative pairs from an embedding file, exactly by default.

    With --queries and --qrels: hard negatives from the CORPUS for each query's
    positives, for retrieval training (see below). The summary goes to stdout,
    or to stderr when stdout carries the items (-o -).
    """
    if mine_retrieval.is_retrieval(ctx):
        mine_retrieval.run(ctx, **{k: v for k, v in locals().items() if k != "ctx"})
        return
    from embedkit.mining.strategies import MineSpec, mine_dataset

    from .inputs import load_inputs
    from .render import engine_text, running, wrote
    from .render import mine as render

    with reported_errors():
        mine_retrieval.refuse_retrieval_options(ctx)
        negatives = 1 if negatives is None else negatives
        metric = metric or "euclidean"
        if metric == "dot":
            raise OptionError("--metric dot applies to retrieval mining (--queries/--qrels); label mining uses "
                              "euclidean or cosine")
        refuse_given(ctx, f"the {strategy} strategy", {"margin": strategy not in ("hard", "batch-hard")})
        refuse_given(ctx, f"--index {index}", {"nlist": index in ("ivf", "auto"), "nprobe": index in ("ivf", "auto"),
                                             "ef_search": index in ("hnsw", "auto")})
        if json and output == "-":
            raise OptionError("--json and -o - would both write to stdout; write the items to a file")
        validated_budget(budget_mib)
        spec = MineSpec(
            strategy=strategy, margin=margin, negatives=negatives, positives=positives,
            positives_count=positives_count, select=select, fallback=fallback, squared=squared, metric=metric,
            index=index, batch_size=batch_size, seed=seed, check_recall=check_recall, nlist=nlist, nprobe=nprobe,
            ef_search=ef_search, max_items=max_items,
        ).validated()
        dataset = load_inputs(embeddings, labels=labels, column=column, label_column=label_column,
                              id_column=id_column, output=output)
        with running(f"mining {strategy}", engine=engine, workers=workers, scheduler=scheduler,
                     parts_dir=parts_dir, budget_mib=budget_mib, quiet=quiet) as execution:
            result = mine_dataset(dataset, spec, execution=execution)
            engine_used = engine_text(execution.engine)
        if output is not None:
            render.write_items(result, dataset, output, form={
                "strategy": strategy, "margin": margin, "squared": squared, "metric": metric})
            wrote(output, f"{result.count:,} rows", quiet=quiet)
    if quiet and output == "-" and not json:
        return  # -q: the items on stdout are the data; no summary on stderr
    render.summary(result, dataset, output=output, as_json=json, engine=engine_used)
