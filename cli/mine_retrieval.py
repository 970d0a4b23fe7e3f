"""``embedkit mine CORPUS --queries Q --qrels R``: the retrieval mode of ``mine`` (options, checks, one call)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from embedkit.choices import DEFAULT_RETRIEVAL_NEGATIVES, OutputFormat, Sampling
from embedkit.errors import OptionError

from .errors import reported_errors
from .options import FILTERS, OUTPUT, QRELS, STRATEGY, given

RangeMinOpt = Annotated[int, typer.Option(
    "--range-min", metavar="A", rich_help_panel=STRATEGY,
    help="Skip the first A survivors of each query.")]
RangeMaxOpt = Annotated[Optional[int], typer.Option(
    "--range-max", metavar="B", rich_help_panel=STRATEGY, show_default=False,
    help="Window: top B + P_max documents; survivor ranks < B.")]
AbsoluteMarginOpt = Annotated[Optional[float], typer.Option(
    "--absolute-margin", metavar="M", rich_help_panel=FILTERS, show_default=False,
    help="Keep s + M <= p (p: lowest positive score).")]
RelativeMarginOpt = Annotated[Optional[float], typer.Option(
    "--relative-margin", metavar="R", rich_help_panel=FILTERS, show_default=False,
    help="Keep s <= p - |p|*R (NV-Retriever: 0.05).")]
MaxScoreOpt = Annotated[Optional[float], typer.Option(
    "--max-score", metavar="S", rich_help_panel=FILTERS, show_default=False, help="Keep s <= S.")]
MinScoreOpt = Annotated[Optional[float], typer.Option(
    "--min-score", metavar="S", rich_help_panel=FILTERS, show_default=False, help="Keep s >= S.")]
MaxPositiveSimilarityOpt = Annotated[Optional[float], typer.Option(
    "--max-positive-similarity", metavar="T", rich_help_panel=FILTERS, show_default=False,
    help="Drop candidates more similar than T to a positive.")]
SamplingOpt = Annotated[Sampling, typer.Option(
    "--sampling", metavar="HOW", rich_help_panel=STRATEGY,
    help="top (the first N survivors) or random (seeded).")]
FormatOpt = Annotated[OutputFormat, typer.Option(
    "--format", metavar="FORMAT", rich_help_panel=OUTPUT,
    help="triplet, n-tuple, labeled-pair, labeled-list, flagembedding.")]
TextColumnOpt = Annotated[Optional[str], typer.Option(
    "--text-column", metavar="NAME", rich_help_panel=OUTPUT,
    help="Carry this text column: query, positive, negative first.")]
SaveCandidatesOpt = Annotated[Optional[str], typer.Option(
    "--save-candidates", metavar="FILE", rich_help_panel=OUTPUT,
    help="Write every query's candidate list (Parquet).")]
FromCandidatesOpt = Annotated[Optional[str], typer.Option(
    "--from-candidates", metavar="FILE", rich_help_panel=QRELS,
    help="Filter a --save-candidates file without searching.")]
RelativeMarginsOpt = Annotated[Optional[str], typer.Option(
    "--relative-margins", metavar="LIST", rich_help_panel=FILTERS,
    help="Sweep: survivors at each relative margin.")]

LABEL_ONLY = ("strategy", "margin", "positives", "positives_count", "select", "fallback", "squared", "batch_size",
              "labels", "label_column", "max_items", "engine", "scheduler", "parts_dir")
RETRIEVAL_ONLY = ("queries", "qrels", "query_id_column", "ignore_missing", "range_min", "range_max",
                  "absolute_margin", "relative_margin", "max_score", "min_score", "max_positive_similarity",
                  "sampling", "format_", "text_column", "save_candidates", "from_candidates", "relative_margins")
LABEL_ONLY_FLAGS = {"positives_count": "--positives-count", "batch_size": "--batch-size", "max_items": "--max-items",
                    "label_column": "--label-column", "parts_dir": "--parts-dir"}


def _flag(name: str) -> str:
    return LABEL_ONLY_FLAGS.get(name, "--" + name.rstrip("_").replace("_", "-"))


def is_retrieval(ctx: typer.Context) -> bool:
    """Retrieval mode: --queries, --qrels or --from-candidates was given."""
    return any(given(ctx, name) for name in ("queries", "qrels", "from_candidates"))


def refuse_retrieval_options(ctx: typer.Context) -> None:
    """Label mode refuses the retrieval options."""
    for name in RETRIEVAL_ONLY:
        if given(ctx, name):
            raise OptionError(f"{_flag(name)} applies to retrieval mining (with --queries and --qrels)")


def run(ctx: typer.Context, **o: Any) -> None:
    """Check the options, run one retrieval mining call, render the report."""
    # Imported here: label mining and --help do not pay for them.
    from embedkit.execution import validated_budget
    from embedkit.mining.retrieval import SearchSpec
    from embedkit.mining.retrieval_job import RetrievalJob, run_retrieval_mining
    from embedkit.mining.retrieval_select import SelectionSpec
    from embedkit.output import refuse_output_in_shard_sets

    from .inputs import parse_floats
    from .render import mine_retrieval as render
    from .render import running, wrote

    with reported_errors():
        for name in LABEL_ONLY:
            if given(ctx, name):
                raise OptionError(f"{_flag(name)} applies to label mining, not to retrieval mining "
                                  "(--queries/--qrels/--from-candidates)")
        metric = o["metric"] or "cosine"
        if metric == "euclidean":
            raise OptionError("--metric euclidean: retrieval mining ranks by similarity; use cosine or dot")
        if o["index"] == "auto":
            o["index"] = "exact"
        if o["json"] and o["output"] == "-":
            raise OptionError("--json and -o - would both write to stdout; write the output to a file")
        validated_budget(o["budget_mib"])
        if o["check_recall"] and o["index"] == "exact":
            raise OptionError("--check-recall audits an approximate index; add --index ivf or --index hnsw")
        if o["from_candidates"] is not None:
            if o["qrels"] is not None:
                raise OptionError("--from-candidates already holds the positives; drop --qrels")
            if o["index"] != "exact":
                raise OptionError("--from-candidates does not search; drop --index")
        elif o["queries"] is None or o["qrels"] is None or o["embeddings"] is None:
            raise OptionError("retrieval mining needs CORPUS, --queries and --qrels (or --from-candidates FILE)")
        for target in (o["output"], o["save_candidates"]):
            refuse_output_in_shard_sets(target, [o["embeddings"], o["queries"]])
        margins = parse_floats(o["relative_margins"], "--relative-margins")
        if margins and o["output"] is not None:
            raise OptionError("--relative-margins only counts survivors at each margin; run again with "
                              "--relative-margin R -o OUT to write a file")
        selection = SelectionSpec(
            negatives=DEFAULT_RETRIEVAL_NEGATIVES if o["negatives"] is None else o["negatives"], range_min=o["range_min"],
            range_max=o["range_max"], absolute_margin=o["absolute_margin"], relative_margin=o["relative_margin"],
            max_score=o["max_score"], min_score=o["min_score"],
            max_positive_similarity=o["max_positive_similarity"], sampling=o["sampling"], seed=o["seed"])
        search = SearchSpec(metric=metric, index=o["index"], check_recall=o["check_recall"], nlist=o["nlist"],
                            nprobe=o["nprobe"], ef_search=o["ef_search"], seed=o["seed"])
        job = RetrievalJob(
            corpus=o["embeddings"], queries=o["queries"], qrels=o["qrels"], selection=selection, search=search,
            from_candidates=o["from_candidates"], column=o["column"], id_column=o["id_column"],
            query_id_column=o["query_id_column"], text_column=o["text_column"],
            ignore_missing=o["ignore_missing"], margins=margins, output=o["output"], fmt=o["format_"],
            save_candidates=o["save_candidates"])
        with running("mining (retrieval)", workers=o["workers"], budget_mib=o["budget_mib"],
                     quiet=o["quiet"] or o["json"]) as execution:
            result = run_retrieval_mining(job, execution=execution)
    if result.output is not None:
        wrote(result.output, f"{result.output_rows:,} rows", quiet=o["quiet"])
    if result.candidates_file:
        wrote(result.candidates_file, "candidate lists", quiet=o["quiet"])
    render.report(result, as_json=o["json"])
