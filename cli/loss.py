"""``embedkit loss``: a contrastive-learning loss over an embedding file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from embedkit.choices import DEFAULT_BUDGET_MIB, ContrastiveForm, LossKind, Reduction
from embedkit.errors import OptionError

from . import options as opt
from .errors import reported_errors
from .options import given

EPILOG = """Kinds (formulas and references: README, section `embedkit loss`):
  contrastive  y·D² + (1−y)·max(m − D, 0)², D Euclidean, y=1 same label
  triplet      max(‖a−p‖² − ‖a−n‖² + m, 0); --no-squared: unsquared
  npair        Sohn 2016;  infonce  NT-Xent, cosine;  supcon  Khosla 2020
  bce          BCE of σ(scale·cos + bias) against y

Examples:
  embedkit loss --kind contrastive --margin 1.0 emb.npy
  embedkit loss --kind contrastive --margins 0.5,1.0,1.5 emb.npy
  embedkit loss --kind infonce --temperature 0.1 emb.npy --json
  embedkit mine emb.npy -o t.parquet -q
  embedkit loss --kind triplet --triplets t.parquet emb.npy
"""


def loss(
    ctx: typer.Context,
    embeddings: opt.EmbeddingsArg = None,
    pairs: Annotated[Optional[str], typer.Option(
        "--pairs", metavar="FILE", rich_help_panel=opt.INPUT,
        help="Pairs table: columns i, j, y (y=1 similar). Default: all label pairs.")] = None,
    triplets: Annotated[Optional[str], typer.Option(
        "--triplets", metavar="FILE", rich_help_panel=opt.INPUT,
        help="Triplets table: anchor, positive, negative (e.g. from mine); '-' = stdin.")] = None,
    column: opt.ColumnOpt = None,
    id_column: opt.IdColumnOpt = None,
    normalize: opt.NormalizeOpt = False,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    kind: Annotated[LossKind, typer.Option(
        "--kind", metavar="KIND", rich_help_panel=opt.LOSS,
        help="contrastive, triplet, npair, infonce, supcon or bce (see below).")] = "contrastive",
    margin: Annotated[float, typer.Option(
        "--margin", "-m", metavar="FLOAT", rich_help_panel=opt.LOSS,
        help="Margin m (contrastive, triplet).")] = 1.0,
    margins: Annotated[Optional[str], typer.Option(
        "--margins", metavar="LIST", rich_help_panel=opt.LOSS,
        help="Sweep of margins, e.g. 0.5,1.0,2.0 (distances computed once).")] = None,
    form: Annotated[ContrastiveForm, typer.Option(
        "--form", metavar="FORM", rich_help_panel=opt.LOSS,
        help="Contrastive form: squared (TF-Addons), halved (Hadsell 2006) or linear.")] = "squared",
    squared: Annotated[bool, typer.Option(
        "--squared/--no-squared", metavar=opt.FLAG, rich_help_panel=opt.LOSS,
        help="Triplet: squared distances (FaceNet) or not (torch.nn).")] = True,
    temperature: Annotated[Optional[float], typer.Option(
        "--temperature", "-t", metavar="FLOAT", rich_help_panel=opt.LOSS, show_default=False,
        help="τ of infonce (default 0.07) and supcon (default 0.1).")] = None,
    scale: Annotated[float, typer.Option(
        "--scale", metavar="FLOAT", rich_help_panel=opt.LOSS, help="bce: logit scale.")] = 10.0,
    bias: Annotated[float, typer.Option(
        "--bias", metavar="FLOAT", rich_help_panel=opt.LOSS, help="bce: logit bias.")] = -10.0,
    l2_reg: Annotated[float, typer.Option(
        "--l2-reg", metavar="FLOAT", rich_help_panel=opt.LOSS, help="npair: λ of λ·(‖f‖² + ‖f⁺‖²).")] = 0.0,
    reduction: Annotated[Reduction, typer.Option(
        "--reduction", metavar="HOW", rich_help_panel=opt.LOSS,
        help="mean, sum, mean-nonzero (over items with loss > 0) or none.")] = "mean",
    trace: Annotated[int, typer.Option(
        "--trace", min=0, metavar="N", rich_help_panel=opt.OUTPUT,
        help="Trace rows: the first N items and the top N.")] = 5,
    output: opt.OutputOpt = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    budget_mib: opt.BudgetOpt = DEFAULT_BUDGET_MIB,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Compute a contrastive-learning loss over an embedding file, with a trace table."""
    from embedkit.execution import validated_budget
    from embedkit.losses.compute import compute_loss
    from embedkit.losses.spec import LossSpec
    from embedkit.output import mined_form
    from embedkit.tables import read_table

    from .inputs import load_inputs, parse_floats
    from .render import engine_text, running, wrote
    from .render import loss as render

    with reported_errors():
        sweep = parse_floats(margins, "--margins")
        validated_budget(budget_mib)
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
        with running(f"{kind} loss", engine=engine, workers=workers, scheduler=scheduler,
                     parts_dir=parts_dir, budget_mib=budget_mib, quiet=quiet) as execution:
            result = compute_loss(
                dataset, spec, pairs=pair_table, triplets=triplet_table,
                pairs_source=pairs or "pairs", triplets_source=triplets or "triplets",
                trace=trace, top=trace, keep_items=output is not None, execution=execution,
            )
            engine_used = engine_text(execution.engine)
        for note in notes:
            wrote("", note, quiet=quiet, verb="note:")
        if output is not None:
            render.write_items(result, dataset, output)
            wrote(output, f"{result.count:,} rows", quiet=quiet)
    if quiet and output == "-" and not json:
        return  # -q: the items on stdout are the data; no summary on stderr
    render.loss(result, dataset, as_json=json, to_stderr=output == "-", engine=engine_used)
