"""Option types shared by the commands (one definition each)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from embedkit.choices import Metric, RankingMetric


def refuse_given(ctx: typer.Context, what: str, applies: dict[str, bool]) -> None:
    """Refuse options given on the command line (or in the environment) that ``what`` does
    not read, as ``loss`` does, instead of ignoring them. ``applies``: parameter -> reads it."""
    from embedkit.errors import OptionError

    unused = [name for name, used in applies.items() if not used and given(ctx, name)]
    if unused:
        names = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise OptionError(f"{names} {'does' if len(unused) == 1 else 'do'} not apply to {what}")


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given (command line or environment), not defaulted."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


# Help panels (one vocabulary across commands and branches).
INPUT, LABELS, QRELS, LOSS, STRATEGY = "Input", "Labels", "Retrieval (qrels)", "Loss", "Strategy"
FILTERS, SEARCH, OUTPUT, PERFORMANCE = "Filters", "Search", "Output", "Performance"
FLAG = ""  # metavar of a flag: nothing (Typer would print <bool>)

EmbeddingsArg = Annotated[
    Optional[str],
    typer.Argument(metavar="EMB", show_default=False,
                   help="Embeddings: .npy, .npz, Parquet, Arrow IPC; a folder or quoted glob of shards. "
                   "'-' or none: stdin."),
]
LabelsOpt = Annotated[
    Optional[str],
    typer.Option("--labels", "-l", metavar="FILE", rich_help_panel=LABELS,
                 help="Labels (.npy, .txt/.csv, Parquet). Default: column 'label', NPZ 'labels' or "
                 "sidecar EMB.labels.*"),
]
ColumnOpt = Annotated[
    Optional[str], typer.Option("--column", metavar="NAME", rich_help_panel=INPUT,
                                help="Parquet embedding column (default: the only list of floats).")
]
LabelColumnOpt = Annotated[
    Optional[str], typer.Option("--label-column", metavar="NAME", rich_help_panel=LABELS,
                                help="Parquet label column (default: 'label').")
]
IdColumnOpt = Annotated[
    Optional[str], typer.Option("--id-column", metavar="NAME", rich_help_panel=INPUT, show_default=False,
                                help="Column of row ids (Parquet/Arrow), for traces and outputs; with --qrels "
                                "the corpus (and --queries) ids, matched as text. Default: row numbers.")
]
QueriesOpt = Annotated[
    Optional[str], typer.Option("--queries", metavar="FILE", rich_help_panel=INPUT, show_default=False,
                                help="Query embeddings, searched in EMB (the reference, or with --qrels "
                                "the corpus).")
]
JsonOpt = Annotated[bool, typer.Option("--json", metavar=FLAG, rich_help_panel=OUTPUT,
                                       help="One JSON object on stdout instead of tables.")]
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", metavar="FILE", rich_help_panel=OUTPUT,
                 help="Write every item to FILE: .parquet, .csv, .jsonl; '-' = CSV on stdout."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", metavar=FLAG, rich_help_panel=OUTPUT,
                                        help="Only errors and data: no progress, notes, summaries on stderr.")]
WorkersOpt = Annotated[
    Optional[int], typer.Option("--workers", min=1, metavar="N", rich_help_panel=PERFORMANCE,
                                help="Worker threads (default: all cores).")
]
BudgetOpt = Annotated[
    float, typer.Option("--budget-mib", metavar="MIB", rich_help_panel=PERFORMANCE,
                        help="Working memory per worker for distance tiles and blocks (MiB).")
]
NormalizeOpt = Annotated[bool, typer.Option("--normalize", metavar=FLAG, rich_help_panel=INPUT,
                                            help="L2-normalise rows first.")]
MetricOpt = Annotated[
    Metric,
    typer.Option("--metric", metavar="METRIC", rich_help_panel=SEARCH,
                 help="euclidean (nearest by ‖q − r‖₂) or cosine."),
]
SampleOpt = Annotated[
    int, typer.Option("--sample", min=1, metavar="N", rich_help_panel=SEARCH,
                      help="Beyond --exact-pairs: pairs of each kind sampled.")
]
SeedOpt = Annotated[int, typer.Option("--seed", metavar="N", rich_help_panel=SEARCH, help="Seed of the pair sample.")]
ExactPairsOpt = Annotated[
    int, typer.Option("--exact-pairs", min=0, metavar="N", rich_help_panel=SEARCH,
                      help="Measure all pairs exactly up to N pairs; sample beyond.")
]
EngineOpt = Annotated[
    Literal["local", "dask"],
    typer.Option("--engine", metavar="ENGINE", rich_help_panel=PERFORMANCE,
                 help="local (threads here) or dask (a cluster; needs embedkit\\[dask]). Same results."),
]
SchedulerOpt = Annotated[
    Optional[str],
    # Not envvar=: EMBEDKIT_SCHEDULER is read by the dask engine only, so a value in the
    # environment never breaks --engine local.
    typer.Option("--scheduler", metavar="URL", rich_help_panel=PERFORMANCE,
                 help="With --engine dask: join tcp://HOST:PORT (default: $EMBEDKIT_SCHEDULER, "
                 "else a LocalCluster)."),
]
PartsDirOpt = Annotated[
    Optional[str],
    typer.Option("--parts-dir", metavar="DIR", rich_help_panel=PERFORMANCE,
                 help="With --engine dask: shards write part files to DIR (seen by all workers)."),
]

# -- retrieval with relevance judgements (qrels) ------------------------------------------------
QrelsOpt = Annotated[
    Optional[str],
    typer.Option("--qrels", metavar="FILE", rich_help_panel=QRELS, show_default=False,
                 help="Judgements (CSV/TSV/JSONL/Parquet, BEIR or TREC): EMB is the corpus, --queries the "
                 "queries (README)."),
]
QueryIdColumnOpt = Annotated[
    Optional[str],
    typer.Option("--query-id-column", metavar="NAME", rich_help_panel=QRELS, show_default=False,
                 help="Parquet id column of --queries (default: --id-column). Without ids, ids are row numbers."),
]
IgnoreMissingOpt = Annotated[
    bool,
    typer.Option("--ignore-missing", metavar=FLAG, rich_help_panel=QRELS,
                 help="Drop (and count) qrels rows naming a query or document the inputs lack, instead of failing."),
]
RankingMetricOpt = Annotated[
    Optional[RankingMetric],
    typer.Option("--metric", metavar="METRIC", rich_help_panel=SEARCH, show_default=False,
                 help="euclidean, cosine or dot (--qrels). Default: euclidean; cosine with --qrels."),
]
