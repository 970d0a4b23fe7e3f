"""Option types shared by the commands (one definition each)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from embedkit.choices import Metric

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


EmbeddingsArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Embeddings: .npy (memory-mapped), .npz or Parquet; '-' or nothing reads stdin.",
        show_default=False,
    ),
]
LabelsOpt = Annotated[
    Optional[str],
    typer.Option("--labels", "-l", help="Labels: .npy, .txt/.csv (one per line) or Parquet. "
                 "Default: Parquet column 'label', NPZ 'labels', or the sidecar EMB.labels.{npy,txt,csv}."),
]
ColumnOpt = Annotated[
    Optional[str], typer.Option("--column", help="Parquet embedding column (default: the only list-of-float column).")
]
LabelColumnOpt = Annotated[
    Optional[str], typer.Option("--label-column", help="Parquet label column (default: 'label' when present).")
]
IdColumnOpt = Annotated[
    Optional[str], typer.Option("--id-column", help="Parquet column of row ids, shown in traces and written to outputs.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Write per-item rows to FILE (.parquet, .csv, .jsonl; '-' = CSV on stdout)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
WorkersOpt = Annotated[
    Optional[int], typer.Option("--workers", min=1, help="Worker threads (default: all cores).")
]
NormalizeOpt = Annotated[bool, typer.Option("--normalize", help="L2-normalise rows first.")]
MetricOpt = Annotated[
    Metric,
    typer.Option("--metric", help="euclidean: rank by ascending ‖q − r‖₂; cosine: by descending cosine "
                 "(FAISS inner product on L2-normalised copies)."),
]
SampleOpt = Annotated[
    int, typer.Option("--sample", min=1, help="Beyond --exact-pairs: positive and negative pairs sampled, of each kind.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the pair sample.")]
ExactPairsOpt = Annotated[
    int, typer.Option("--exact-pairs", min=0, help="Measure every pair i < j exactly up to this many pairs; sample beyond.")
]
EngineOpt = Annotated[
    Literal["local", "dask"],
    typer.Option("--engine", help="Where the blocked work runs: local (threads here) or dask (a Dask cluster; "
                 "needs pip install 'embedkit\\[dask]'). Results are identical."),
]
SchedulerOpt = Annotated[
    Optional[str],
    typer.Option("--scheduler", envvar="EMBEDKIT_SCHEDULER", show_envvar=True,
                 help="With --engine dask: the scheduler to join (tcp://HOST:PORT). Default: a LocalCluster "
                 "of one single-threaded worker per core, started and stopped by the command."),
]
PartsDirOpt = Annotated[
    Optional[str],
    typer.Option("--parts-dir", help="With --engine dask: each shard writes its result to a part file here "
                 "(atomically) and the command merges them in shard order; the folder must be visible to "
                 "every worker. Default: results come back over Dask's connections."),
]
