"""``embedkit inspect``: shape, norms, bad and duplicate rows, labels, pair distances and a suggested margin."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from embedkit.choices import (
    DEFAULT_BINS,
    DEFAULT_BUDGET_MIB,
    DEFAULT_EXACT_PAIRS,
    DEFAULT_SAMPLE,
    DEFAULT_SEED,
)

from . import options as opt
from .errors import reported_errors

EPILOG = """The suggested margin minimises (negative pairs inside it) + (positive pairs
beyond it), as fractions; distances are Euclidean (the D of the contrastive loss).

Examples:
  embedkit inspect emb.npy
  embedkit inspect emb.parquet --json
  embedkit inspect emb.npy --plot distances.png
"""


def inspect(
    embeddings: opt.EmbeddingsArg = None,
    column: opt.ColumnOpt = None,
    normalize: opt.NormalizeOpt = False,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    exact_pairs: opt.ExactPairsOpt = DEFAULT_EXACT_PAIRS,
    sample: opt.SampleOpt = DEFAULT_SAMPLE,
    seed: opt.SeedOpt = DEFAULT_SEED,
    plot: Annotated[Optional[str], typer.Option(
        "--plot", metavar="FILE", rich_help_panel=opt.OUTPUT,
        help="Histograms and margin curve to FILE: .png, .svg or .pdf (embedkit\\[plot]).")] = None,
    bins: Annotated[int, typer.Option(
        "--bins", min=2, max=200, metavar="N", rich_help_panel=opt.OUTPUT, help="Histogram bins.")] = DEFAULT_BINS,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    budget_mib: opt.BudgetOpt = DEFAULT_BUDGET_MIB,
) -> None:
    """Describe an embedding export and suggest a contrastive margin from its pair distances.

    NaN/Inf rows are counted and left out of the other figures.
    """
    from embedkit.execution import validated_budget
    from embedkit.inspection import inspect_embeddings
    from embedkit.io import load_allowing_nonfinite
    from embedkit.output import check_output_path, guarded_inputs, refuse_output_in_shard_sets

    from .inputs import resolve_embeddings
    from .render import inspect as render
    from .render import wrote

    with reported_errors():
        validated_budget(budget_mib)
        if plot is not None:
            render.require_matplotlib()
        path = resolve_embeddings(embeddings)
        if plot is not None:
            check_output_path(plot, guarded_inputs([path], [labels]))
            refuse_output_in_shard_sets(plot, [path])
            render.plot_format(plot)
        loaded = load_allowing_nonfinite(path, column=column, label_column=label_column, labels_path=labels)
        result = inspect_embeddings(loaded, normalize=normalize, exact_pairs=exact_pairs, sample=sample,
                                    seed=seed, bins=bins, budget_mib=budget_mib)
        if plot is not None:
            render.write_plot(result, plot)
            wrote(plot, "", quiet=quiet, verb="plot")
    render.inspection(result, as_json=json, dataset=loaded.dataset)
