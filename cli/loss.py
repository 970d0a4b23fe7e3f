"""``embedkit loss``: a contrastive-learning loss over an embedding file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli import options as opt
from cli.errors import reported_errors
from cli.options import given
from embedkit.choices import ContrastiveForm, LossKind, Reduction
from embedkit.errors import OptionError

EPILOG = (
    "Examples:  embedkit loss --kind contrastive --margin 1.0 emb.npy  ·  "
    "embedkit loss --kind triplet --triplets t.csv emb.parquet --json  ·  "
    "embedkit mine emb.npy -o - | embedkit loss --kind triplet --no-squared --triplets - emb.npy"
)


def loss(
    ctx: typer.Context,
    embeddings: opt.EmbeddingsArg = None,
    kind: Annotated[LossKind, typer.Option("--kind", help=(
        "contrastive: y·D² + (1−y)·max(m−D,0)², D Euclidean, y=1 similar. "
        "triplet: max(‖a−p‖² − ‖a−n‖² + α, 0) (FaceNet; --no-squared: torch.nn's unsquared form). "
        "npair: log(1 + Σ_{j≠i} exp(f_i·f_j⁺ − f_i·f_i⁺)), Sohn 2016. "
        "infonce: −log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_n e^{s_an/τ})), cosine, mean over positive pairs (NT-Xent). "
        "supcon: Khosla 2020 L_out, cosine. "
        "bce: BCE of σ(scale·cos + bias) against y."))] = "contrastive",
    margin: Annotated[float, typer.Option("--margin", "-m", help="Margin m (contrastive) or α (triplet).")] = 1.0,
    margins: Annotated[Optional[str], typer.Option(
        "--margins", help="Margin sweep, e.g. 0.5,1.0,1.5,2.0: loss and active items at each (distances computed once).")] = None,
    form: Annotated[ContrastiveForm, typer.Option(
        "--form", help="Contrastive form: squared = y·D² + (1−y)·max(m−D,0)² (TF-Addons); "
        "halved = ½ of that (Hadsell 2006); linear = ½y·D² + (1−y)·max(m−D,0).")] = "squared",
    squared: Annotated[bool, typer.Option(
        "--squared/--no-squared", help="Triplet: squared distances (FaceNet) or unsquared (torch.nn.TripletMarginLoss).")] = True,
    temperature: Annotated[Optional[float], typer.Option(
        "--temperature", "-t", help="τ for infonce (default 0.07) and supcon (default 0.1).")] = None,
    scale: Annotated[float, typer.Option("--scale", help="bce: logit scale (SigLIP init 10).")] = 10.0,
    bias: Annotated[float, typer.Option("--bias", help="bce: logit bias (SigLIP init −10).")] = -10.0,
    l2_reg: Annotated[float, typer.Option("--l2-reg", help="npair: λ of the λ·(‖f‖² + ‖f⁺‖²) term.")] = 0.0,
    pairs: Annotated[Optional[str], typer.Option(
        "--pairs", help="Pairs table (CSV, JSONL or Parquet; columns i, j, y with y=1 similar). Default: all label pairs.")] = None,
    triplets: Annotated[Optional[str], typer.Option(
        "--triplets", help="Triplets table (columns anchor, positive, negative), e.g. from `embedkit mine`. '-' = stdin.")] = None,
    labels: opt.LabelsOpt = None,
    column: opt.ColumnOpt = None,
    label_column: opt.LabelColumnOpt = None,
    id_column: opt.IdColumnOpt = None,
    normalize: opt.NormalizeOpt = False,
    reduction: Annotated[Reduction, typer.Option(
        "--reduction", help="mean (over items), sum, mean-nonzero (over items with loss > 0), none (per item).")] = "mean",
    trace: Annotated[int, typer.Option("--trace", min=0, help="Trace rows to show: the first N items and the top N.")] = 5,
    output: opt.OutputOpt = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Compute a contrastive-learning loss over an embedding file, with a trace table."""
    from cli.inputs import load_inputs, parse_floats
    from cli.render import loss as render
    from cli.render import engine_text, progress_bar, wrote
    from embedkit.engines import make_engine
    from embedkit.io import read_table
    from embedkit.losses.compute import compute_loss
    from embedkit.losses.spec import LossSpec
    from embedkit.output import mined_form

    with reported_errors():
        sweep = parse_floats(margins, "--margins")
        notes = []
        if kind == "triplet" and triplets is not None and not given(ctx, "squared"):
            mined = mined_form(triplets)
            if mined is not None and mined.get("strategy") in ("semi-hard", "easy"):
                squared = bool(mined.get("squared"))
                notes.append(f"triplet form {'squared' if squared else 'unsquared (--no-squared)'}, as {triplets} "
                             f"was mined (mine -s {mined['strategy']} --{'' if squared else 'no-'}squared)")
        spec = LossSpec(kind=kind, margin=margin, form=form, squared=squared, temperature=temperature,
                        scale=scale, bias=bias, l2_reg=l2_reg, normalize=normalize, reduction=reduction,
                        margins=sweep)
        unused = spec.inapplicable()
        if unused:
            verb = "does" if len(unused) == 1 else "do"
            raise OptionError(f"{', '.join(unused)} {verb} not apply to the {kind} loss")
        if reduction == "none" and output is None and not json:
            raise OptionError("--reduction none lists every item: write them with -o FILE, or use --json")
        if engine == "dask" and (kind not in ("contrastive", "bce") or pairs is not None):
            raise OptionError("--engine dask runs the all-pairs scan of the contrastive and bce losses "
                              "(no --pairs); other losses run here, drop --engine")
        spec = spec.validated()
        dataset = load_inputs(embeddings, labels=labels, column=column, label_column=label_column,
                              id_column=id_column, tables=(pairs, triplets), output=output)
        pair_table = read_table(pairs, ("i", "j")) if pairs else None
        triplet_table = read_table(triplets, ("anchor", "positive", "negative")) if triplets else None
        if (kind == "triplet" and triplet_table is not None and "d_ap" in triplet_table and not notes
                and not given(ctx, "squared")):
            notes.append(f"triplets with d_ap/d_an columns (from `embedkit mine`?) are scored with "
                         f"{'squared' if squared else 'unsquared'} distances; mine's semi-hard band is unsquared "
                         "unless mined with --squared: add --no-squared to score them in the same form")
        with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
                progress_bar(f"{kind} loss", enabled=not quiet) as progress:
            result = compute_loss(
                dataset, spec, pairs=pair_table, triplets=triplet_table,
                pairs_source=pairs or "pairs", triplets_source=triplets or "triplets",
                trace=trace, top=trace, keep_items=output is not None, workers=workers, engine=runner,
                progress=progress,
            )
            engine_used = engine_text(runner)
        for note in notes:
            wrote("", note, quiet=quiet, verb="note:")
        if output is not None:
            render.write_items(result, dataset, output)
            wrote(output, f"{result.count:,} rows", quiet=quiet)
    if quiet and output == "-" and not json:
        return  # -q: the items on stdout are the data; no summary on stderr
    render.loss(result, dataset, as_json=json, to_stderr=output == "-", engine=engine_used)
