"""``embedkit eval``: retrieval metrics (precision@1, R-precision, MAP@R, recall@k) from exact k-NN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cli import options as opt
from cli.errors import reported_errors
from embedkit.errors import OptionError

if TYPE_CHECKING:
    from embedkit.io import Dataset

EPILOG = """Figures (pytorch-metric-learning's definitions; README, `embedkit eval`):
  precision_at_1  the nearest neighbour has the query's label
  r_precision     same-label share of the R nearest (R = same-label rows)
  map_at_r        mean average precision over the R nearest
  recall_at_k     at least one same-label row among the k nearest

Examples:
  embedkit eval emb.npy
  embedkit eval emb.parquet --metric cosine -k 1,10,100 --json
  embedkit eval --queries q.npy --reference gallery.npy --per-class
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
    from cli.inputs import load_inputs

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
    queries: Annotated[Optional[str], typer.Option(
        "--queries", metavar="FILE", rich_help_panel=opt.INPUT,
        help="Queries searched in the reference (EMB or --reference).")] = None,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", metavar="FILE", rich_help_panel=opt.INPUT,
        help="Reference (gallery) with --queries; the same as giving EMB.")] = None,
    column: opt.ColumnOpt = None,
    labels: opt.LabelsOpt = None,
    label_column: opt.LabelColumnOpt = None,
    query_labels: Annotated[Optional[str], typer.Option(
        "--query-labels", metavar="FILE", rich_help_panel=opt.LABELS,
        help="Labels of --queries (default: its column or sidecar).")] = None,
    k: Annotated[str, typer.Option(
        "--k", "-k", metavar="LIST", rich_help_panel=opt.SEARCH,
        help="The k of recall_at_k, comma-separated.")] = "1,5,10",
    metric: opt.MetricOpt = "euclidean",
    per_class: Annotated[bool, typer.Option(
        "--per-class", metavar=opt.FLAG, rich_help_panel=opt.OUTPUT,
        help="Also a table of the figures per label.")] = False,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Retrieval figures from exact k-NN: every row a query against the others (self excluded).

    Queries whose label has no other row are skipped.
    """
    from cli.inputs import parse_ints
    from cli.render import eval as render
    from cli.render import engine_text, progress_bar
    from embedkit.engines import make_engine
    from embedkit.metrics import evaluate_retrieval

    with reported_errors():
        ks = parse_ints(k, "--k")
        reference_set, query_set = load_split(embeddings, queries, reference, query_labels,
                                              labels=labels, column=column, label_column=label_column)
        with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
                progress_bar("eval", enabled=not quiet) as progress:
            result = evaluate_retrieval(reference_set, query_set, ks=ks, metric=metric, per_class=per_class,
                                        threads=workers, engine=runner, progress=progress)
            engine_used = engine_text(runner)
    render.evaluation(result, reference_set, query_set, as_json=json, engine=engine_used)
