"""``embedkit mine``: hard, semi-hard, batch-hard, easy and within-margin mining over a whole file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli import options as opt
from cli.errors import reported_errors
from cli.options import refuse_given
from embedkit.choices import Fallback, IndexKind, Metric, PositiveChoice, Select, Strategy
from embedkit.errors import OptionError

EPILOG = (
    "Examples:  embedkit mine emb.npy --strategy semi-hard --margin 0.2 -o triplets.parquet  ·  "
    "embedkit mine emb.npy -s hard --negatives 5 -o - | embedkit loss --kind triplet --triplets - emb.npy  ·  "
    "embedkit mine big.npy -s hard --index ivf --check-recall 1000 -o hard.parquet  ·  "
    "embedkit mine emb.npy -s within-margin -m 0.5 -o pairs.csv"
)


def mine(
    ctx: typer.Context,
    embeddings: opt.EmbeddingsArg = None,
    strategy: Annotated[Strategy, typer.Option("--strategy", "-s", help=(
        "d = Euclidean distance (or 1 − cos with --metric cosine); positive = same label, negative = other label. "
        "hard: each anchor's K nearest negatives (K = --negatives). "
        "semi-hard (FaceNet): negatives with d_ap < d_an ≤ d_ap + margin; the closest one per (a, p), or --select all. "
        "batch-hard: each anchor's farthest positive and nearest negative. "
        "easy: negatives with d_an − d_ap > margin; the closest one per (a, p), or --select all. "
        "within-margin: every negative pair i < j with d < margin (the pairs with a gradient in the contrastive loss)."))] = "semi-hard",
    margin: Annotated[float, typer.Option("--margin", "-m", help="Margin of the semi-hard/easy band and of within-margin.")] = 1.0,
    negatives: Annotated[int, typer.Option("--negatives", "-k", help="hard: negatives per anchor (K).")] = 1,
    positives: Annotated[Optional[PositiveChoice], typer.Option("--positives", help=(
        "Positives paired with each anchor: all, hardest (farthest), nearest, or random (--positives-count of them, "
        "drawn with --seed). Default: random 1 (batch-hard: hardest)."), show_default=False)] = None,
    positives_count: Annotated[int, typer.Option("--positives-count", help="--positives random: how many per anchor.")] = 1,
    select: Annotated[Select, typer.Option("--select", help="semi-hard/easy: the closest negative in the band per (a, p), or all of them.")] = "closest",
    fallback: Annotated[Fallback, typer.Option("--fallback", help=(
        "semi-hard, when an (a, p) has no negative in the band: none (count it, emit nothing); hardest (its nearest "
        "negative); tf-addons (TF-Addons' triplet_semihard_loss: the closest negative with d_an > d_ap, no upper bound, "
        "else the farthest negative)."))] = "none",
    squared: Annotated[bool, typer.Option("--squared/--no-squared", help=(
        "semi-hard/easy bands on squared distances: d_ap² < d_an² ≤ d_ap² + margin (FaceNet; matches "
        "`embedkit loss --kind triplet`'s default squared form).")) ] = False,
    metric: Annotated[Metric, typer.Option("--metric", help="euclidean, or cosine (distance 1 − cos).")] = "euclidean",
    index: Annotated[IndexKind, typer.Option("--index", help=(
        "exact: blocked scan of every pair, equals the definition. hnsw/ivf: approximate FAISS index (hard, "
        "batch-hard). auto: exact up to 200,000 rows or when the strategy needs a band, IVF beyond."))] = "auto",
    check_recall: Annotated[int, typer.Option("--check-recall", min=0, help=(
        "Compare N sampled anchors' negatives with an exact scan and report the recall (hard, batch-hard)."))] = 0,
    nlist: Annotated[Optional[int], typer.Option("--nlist", help="IVF lists (default ≈ 4·√n).", show_default=False)] = None,
    nprobe: Annotated[Optional[int], typer.Option("--nprobe", help="IVF lists probed (default nlist/200, at least 20).", show_default=False)] = None,
    ef_search: Annotated[Optional[int], typer.Option("--ef-search", help="HNSW efSearch (default 64).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=(
        "Mine inside random batches of B rows (a permutation drawn with --seed), exactly within each batch."),
        show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random positives, batches and recall samples.")] = 0,
    max_items: Annotated[int, typer.Option("--max-items", help="Refuse to emit more items than this.")] = 50_000_000,
    budget_mib: Annotated[float, typer.Option("--budget-mib", help="Working memory per worker for distance tiles.")] = 64.0,
    labels: opt.LabelsOpt = None,
    column: opt.ColumnOpt = None,
    label_column: opt.LabelColumnOpt = None,
    id_column: opt.IdColumnOpt = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help=(
        "Write the items to FILE (.parquet, .csv, .jsonl; '-' = CSV on stdout): anchor, positive, negative, d_ap, d_an "
        "(triplets) or i, j, y, d (pairs), row indices; with --id-column also *_id columns."))] = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Mine triplets or negative pairs from an embedding file, exactly by default.

    Reads labels as `embedkit loss` does. The summary (anchors, items, anchors with none,
    distance quantiles, index, time) goes to stdout, or to stderr when stdout carries data.
    """
    from cli.inputs import load_inputs
    from cli.render import mine as render
    from cli.render import engine_text, progress_bar, wrote
    from embedkit.engines import make_engine
    from embedkit.mining.strategies import MineSpec, mine_dataset

    with reported_errors():
        refuse_given(ctx, f"the {strategy} strategy", {"margin": strategy not in ("hard", "batch-hard")})
        refuse_given(ctx, f"--index {index}", {"nlist": index in ("ivf", "auto"), "nprobe": index in ("ivf", "auto"),
                                             "ef_search": index in ("hnsw", "auto")})
        if json and output == "-":
            raise OptionError("--json and -o - would both write to stdout; write the items to a file")
        if budget_mib <= 0:
            raise OptionError(f"--budget-mib must be > 0; got {budget_mib}")
        spec = MineSpec(
            strategy=strategy, margin=margin, negatives=negatives, positives=positives,
            positives_count=positives_count, select=select, fallback=fallback, squared=squared, metric=metric,
            index=index, batch_size=batch_size, seed=seed, check_recall=check_recall, nlist=nlist, nprobe=nprobe,
            ef_search=ef_search, max_items=max_items,
        ).validated()
        dataset = load_inputs(embeddings, labels=labels, column=column, label_column=label_column,
                              id_column=id_column, output=output)
        with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
                progress_bar(f"mining {strategy}", enabled=not quiet) as progress:
            result = mine_dataset(dataset, spec, workers=workers, engine=runner, budget_mib=budget_mib,
                                  progress=progress)
            engine_used = engine_text(runner)
        if output is not None:
            render.write_items(result, dataset, output, form={
                "strategy": strategy, "margin": margin, "squared": squared, "metric": metric})
            wrote(output, f"{result.count:,} rows", quiet=quiet)
    if quiet and output == "-" and not json:
        return  # -q: the items on stdout are the data; no summary on stderr
    render.summary(result, dataset, output=output, as_json=json, engine=engine_used)
