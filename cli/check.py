"""``embedkit check``: a CI gate. Requirements over eval / inspect / loss figures; exit 1 when one fails."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli import options as opt
from cli.errors import EXIT_CHECK_FAILED, reported_errors
from embedkit.choices import DEFAULT_EXACT_PAIRS, DEFAULT_SAMPLE, DEFAULT_SEED, ContrastiveForm

EPILOG = (
    "Requirement: NAME OP VALUE, OP one of >= <= > < ==.  Figures: precision_at_1, r_precision, map_at_r, "
    "recall_at_K (any K); contrastive_loss, triplet_loss, npair_loss, infonce_loss, supcon_loss, bce_loss; "
    "rows, dim, nan_rows, inf_rows, nonfinite_rows, zero_rows, norm_min, norm_mean, norm_max, duplicate_rows, "
    "classes, singleton_classes, positive_pairs, negative_pairs, positive_fraction, overlap, ranking_error, "
    "suggested_margin, margin_negatives_inside, margin_positives_beyond, positive_distance_mean, "
    "negative_distance_mean, {positive,negative}_distance_{p01,p05,p25,p50,p75,p95,p99}.  "
    "Exit 0: all hold; 1: one fails; 2: bad requirement or input.  "
    "Examples:  embedkit check emb.npy --require precision_at_1>=0.9 --require nan_rows==0  ·  "
    "embedkit check new.npy --baseline old.npy --max-drop precision_at_1=0.01 --junit report.xml"
)


def check(
    embeddings: opt.EmbeddingsArg = None,
    require: Annotated[Optional[list[str]], typer.Option(
        "--require", "-r", help="NAME OP VALUE, e.g. 'precision_at_1>=0.9' (repeatable; quote it in the shell).",
        show_default=False)] = None,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="A previous export of the same rows to compare with (labels: its own, else EMB's).")] = None,
    max_drop: Annotated[Optional[list[str]], typer.Option(
        "--max-drop", help="NAME=VALUE: the figure may be worse than in --baseline by at most VALUE (repeatable).",
        show_default=False)] = None,
    junit: Annotated[Optional[str], typer.Option(
        "--junit", help="Also write a JUnit XML report to FILE (one test case per requirement).")] = None,
    metric: opt.MetricOpt = "euclidean",
    margin: Annotated[float, typer.Option("--margin", "-m", help="Loss figures: margin (contrastive, triplet).")] = 1.0,
    temperature: Annotated[Optional[float], typer.Option(
        "--temperature", "-t", help="Loss figures: τ for infonce (default 0.07) and supcon (default 0.1).")] = None,
    form: Annotated[ContrastiveForm, typer.Option("--form", help="contrastive_loss form (see `embedkit loss`).")] = "squared",
    squared: Annotated[bool, typer.Option("--squared/--no-squared", help="triplet_loss: squared distances.")] = True,
    scale: Annotated[float, typer.Option("--scale", help="bce_loss: logit scale.")] = 10.0,
    bias: Annotated[float, typer.Option("--bias", help="bce_loss: logit bias.")] = -10.0,
    normalize: opt.NormalizeOpt = False,
    exact_pairs: opt.ExactPairsOpt = DEFAULT_EXACT_PAIRS,
    sample: opt.SampleOpt = DEFAULT_SAMPLE,
    seed: opt.SeedOpt = DEFAULT_SEED,
    labels: opt.LabelsOpt = None,
    column: opt.ColumnOpt = None,
    label_column: opt.LabelColumnOpt = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
) -> None:
    """Check requirements on an embedding export: exit 0 when all hold, 1 when one fails, 2 on bad input.

    NaN/Inf rows are counted (nan_rows, inf_rows) rather than refused, so `--require nan_rows==0`
    fails with exit 1; figures of eval and loss are undefined (and fail) on such embeddings.
    """
    from cli.inputs import guarded_inputs, resolve_embeddings
    from cli.render import check as render
    from cli.render import wrote
    from embedkit.checks import CheckSettings, parse_max_drops, parse_requirements, run_check, write_junit
    from embedkit.losses.spec import LossSpec
    from embedkit.output import check_output_path
    from embedkit.rawinput import load_allowing_nonfinite

    with reported_errors():
        requirements = parse_requirements(require or ())
        drops = parse_max_drops(max_drop or ())
        spec = LossSpec(kind="contrastive", margin=margin, temperature=temperature, form=form, squared=squared,
                        scale=scale, bias=bias, normalize=normalize).validated()
        settings = CheckSettings(metric=metric, loss=spec, exact_pairs=exact_pairs, sample=sample, seed=seed,
                                 workers=workers)
        path = resolve_embeddings(embeddings)
        if junit is not None:
            check_output_path(junit, guarded_inputs([path, baseline], [labels]))
        loaded = load_allowing_nonfinite(path, column=column, label_column=label_column, labels_path=labels)
        old = load_allowing_nonfinite(baseline, column=column, label_column=label_column) if baseline else None
        report = run_check(loaded, requirements, baseline=old, max_drops=drops, settings=settings)
        if junit is not None:
            write_junit(report, junit)
            wrote(junit, f"{len(report.outcomes):,} test cases", quiet=quiet)
    render.report(report, as_json=json, dataset=loaded.dataset)
    if not report.passed:
        render.failure_summary(report)
        raise typer.Exit(EXIT_CHECK_FAILED)
