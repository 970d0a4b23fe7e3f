"""``embedkit eval``: retrieval metrics (precision@1, R-precision, MAP@R, recall@k) from exact k-NN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cli import options as opt
from cli.errors import reported_errors
from embedkit.errors import OptionError

if TYPE_CHECKING:
    from embedkit.io import Dataset

EPILOG = (
    "Examples:  embedkit eval emb.npy  ·  embedkit eval emb.parquet --metric cosine --k 1,10,100 --json  ·  "
    "embedkit eval --queries q.npy --reference gallery.npy --per-class"
)


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
    k: Annotated[str, typer.Option("--k", "-k", help="The k of recall_at_k, comma-separated: the fraction of queries "
                                   "with at least one same-label row among their k nearest.")] = "1,5,10",
    metric: opt.MetricOpt = "euclidean",
    queries: Annotated[Optional[str], typer.Option(
        "--queries", help="Query embeddings for a gallery split: each query is searched in the reference "
        "(EMB or --reference) and nothing is excluded.")] = None,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", help="Reference (gallery) embeddings, with --queries; the same as giving EMB.")] = None,
    query_labels: Annotated[Optional[str], typer.Option(
        "--query-labels", help="Labels of --queries (default: its label column or sidecar file).")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Also a table of the metrics per label.")] = False,
    labels: opt.LabelsOpt = None,
    column: opt.ColumnOpt = None,
    label_column: opt.LabelColumnOpt = None,
    json: opt.JsonOpt = False,
    quiet: opt.QuietOpt = False,
    workers: opt.WorkersOpt = None,
    engine: opt.EngineOpt = "local",
    scheduler: opt.SchedulerOpt = None,
    parts_dir: opt.PartsDirOpt = None,
) -> None:
    """Retrieval metrics: every row a query against all others (self excluded by id), exact FAISS k-NN.

    precision_at_1, r_precision and map_at_r as pytorch-metric-learning's AccuracyCalculator
    defines them (R = same-label references of the query; queries with R = 0 are skipped),
    and recall_at_k for each --k.
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
