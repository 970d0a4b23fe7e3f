"""Option types shared by the commands (one definition each)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from embedkit.distances import Metric, RankingMetric

EmbeddingsArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Embeddings: .npy (memory-mapped), .npz, Parquet or Arrow IPC; a folder or a quoted glob of such "
        "shards is one dataset (sorted by name); '-' or nothing reads stdin.",
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
    # Not envvar=: EMBEDKIT_SCHEDULER is read by the dask engine only, so a value in the
    # environment never breaks --engine local.
    typer.Option("--scheduler",
                 help="With --engine dask: the scheduler to join (tcp://HOST:PORT; default: "
                 "$EMBEDKIT_SCHEDULER when set). Otherwise a LocalCluster "
                 "of one single-threaded worker per core, started and stopped by the command."),
]
PartsDirOpt = Annotated[
    Optional[str],
    typer.Option("--parts-dir", help="With --engine dask: each shard writes its result to a part file here "
                 "(atomically) and the command merges them in shard order; the folder must be visible to "
                 "every worker. Default: results come back over Dask's connections."),
]

# -- retrieval with relevance judgements (qrels) ------------------------------------------------
QRELS_PANEL = "Retrieval (qrels)"
QrelsOpt = Annotated[
    Optional[str],
    typer.Option("--qrels", rich_help_panel=QRELS_PANEL, show_default=False,
                 help="Relevance judgements: CSV/TSV/JSONL/Parquet with query_id, doc_id[, relevance|score] "
                 "(BEIR's query-id, corpus-id, score too), or TREC qrels 'qid 0 docid rel'. Grade <= 0 = "
                 "not relevant; no grade column = 1. With it, EMB is the corpus and --queries the queries."),
]
QueryIdColumnOpt = Annotated[
    Optional[str],
    typer.Option("--query-id-column", rich_help_panel=QRELS_PANEL, show_default=False,
                 help="Parquet id column of --queries (default: --id-column). Without ids, ids are row numbers."),
]
CorpusIdColumnOpt = Annotated[
    Optional[str],
    typer.Option("--id-column", rich_help_panel=QRELS_PANEL, show_default=False,
                 help="Parquet id column of the corpus (and of --queries unless --query-id-column). "
                 "Ids match the qrels as text (7 == \"7\"); without ids, ids are row numbers."),
]
IgnoreMissingOpt = Annotated[
    bool,
    typer.Option("--ignore-missing", rich_help_panel=QRELS_PANEL,
                 help="Drop (and count) qrels rows naming a query or document the inputs lack, instead of failing."),
]
RankingMetricOpt = Annotated[
    Optional[RankingMetric],
    typer.Option("--metric", show_default=False,
                 help="euclidean: rank by ascending ‖q − r‖₂; cosine: by descending cosine; dot (with --qrels): "
                 "by descending inner product. Default: euclidean, or cosine with --qrels."),
]
