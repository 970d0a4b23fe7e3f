"""``embedkit mine CORPUS --queries Q --qrels R``: the retrieval mode of ``mine`` (options, checks, one call)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import typer

from cli.errors import reported_errors
from cli.inputs import parse_floats, refuse_output_in_shard_sets
from embedkit.errors import OptionError
from embedkit.mining.retrieval_select import OutputFormat, Sampling, SelectionSpec

AnyMetric = Literal["euclidean", "cosine", "dot"]
RQ, FILTERS, STRATEGY, OUTPUT = "Retrieval (qrels)", "Filters", "Strategy", "Output"

QueriesOpt = Annotated[Optional[str], typer.Option("--queries", rich_help_panel=RQ, help=(
    "Retrieval mode: query embeddings (NPY, Parquet). Each query with a positive in --qrels gets negatives from "
    "CORPUS. Selection per query q, p = its lowest positive score: (1) candidates = documents that are not "
    "positives of q (with --range-max B: only among the top B + P_max documents, P_max = most positives of any "
    "query; else the whole corpus, exactly); (2) filters; (3) survivors by score descending, ties by corpus row; "
    "the first --range-min A skipped, with --range-max only ranks < B kept; (4) --negatives N taken (--sampling)."))]
QrelsOpt = Annotated[Optional[str], typer.Option("--qrels", rich_help_panel=RQ, help=(
    "Judgements: CSV/TSV/JSONL/Parquet with query_id, doc_id and optional relevance (or score), or TREC qrels "
    "(qid 0 docid rel). A document is a positive when its relevance is > 0 (default 1)."))]
QueryIdColumnOpt = Annotated[Optional[str], typer.Option("--query-id-column", rich_help_panel=RQ, help=(
    "Id column of the queries when it differs from --id-column (without ids, ids are row numbers)."))]
IgnoreMissingOpt = Annotated[bool, typer.Option("--ignore-missing", rich_help_panel=RQ, help=(
    "Drop qrels rows naming a query or document the inputs lack (and count them) instead of failing."))]
RangeMinOpt = Annotated[int, typer.Option("--range-min", rich_help_panel=STRATEGY, help=(
    "Skip the first A surviving candidates of each query (the likeliest unlabelled positives)."))]
RangeMaxOpt = Annotated[Optional[int], typer.Option("--range-max", rich_help_panel=STRATEGY, help=(
    "Candidates only among the top B + P_max documents, and survivors ranked < B "
    "(sentence-transformers' window). Default: the whole corpus, exactly."), show_default=False)]
AbsoluteMarginOpt = Annotated[Optional[float], typer.Option("--absolute-margin", rich_help_panel=FILTERS, help=(
    "Keep a candidate with score s only when s + M ≤ p."), show_default=False)]
RelativeMarginOpt = Annotated[Optional[float], typer.Option("--relative-margin", rich_help_panel=FILTERS, help=(
    "Keep s ≤ p − |p|·R (NV-Retriever's TopK-PercPos: R = 0.05, negatives below 95 % of the positive)."),
    show_default=False)]
MaxScoreOpt = Annotated[Optional[float], typer.Option("--max-score", rich_help_panel=FILTERS,
                        help="Keep s ≤ S.", show_default=False)]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", rich_help_panel=FILTERS,
                        help="Keep s ≥ S.", show_default=False)]
MaxPositiveSimilarityOpt = Annotated[Optional[float], typer.Option(
    "--max-positive-similarity", rich_help_panel=FILTERS, help=(
        "Drop a candidate whose similarity to any positive of the query exceeds T (near-duplicates of a "
        "positive: false negatives)."), show_default=False)]
SamplingOpt = Annotated[Sampling, typer.Option("--sampling", rich_help_panel=STRATEGY, help=(
    "top: the first N survivors; random: N drawn with --seed among the survivors ranked < --range-max "
    "(never a positive, never twice, no padding: a query with fewer gets fewer)."))]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", rich_help_panel=OUTPUT, help=(
    "triplet: query_id, positive_id, negative_id, positive_score, negative_score, negative_rank; n-tuple: one row "
    "per (query, positive) with negative_1_id … negative_N_id and scores; labeled-pair, labeled-list: as "
    "sentence-transformers names them; flagembedding: JSON lines {query, pos, neg} (needs --text-column)."))]
TextColumnOpt = Annotated[Optional[str], typer.Option("--text-column", rich_help_panel=OUTPUT, help=(
    "Carry this Parquet text column of the queries and corpus: the output starts with query, positive, negative."))]
SaveCandidatesOpt = Annotated[Optional[str], typer.Option("--save-candidates", rich_help_panel=OUTPUT, help=(
    "Write each query's candidate list (ids, scores, ranks, its positives and their scores) to this Parquet "
    "file, for --from-candidates."))]
FromCandidatesOpt = Annotated[Optional[str], typer.Option("--from-candidates", rich_help_panel=RQ, help=(
    "Apply filters and sampling to a --save-candidates file without searching again (same result as one pass "
    "when the saved lists hold every candidate needed; the report says when it cannot be sure)."))]
RelativeMarginsOpt = Annotated[Optional[str], typer.Option("--relative-margins", rich_help_panel=FILTERS, help=(
    "Sweep: how many negatives survive at each relative margin (e.g. 0,0.02,0.05,0.1), from one search."))]

LABEL_ONLY = ("strategy", "margin", "positives", "positives_count", "select", "fallback", "squared", "batch_size",
              "labels", "label_column", "max_items", "engine", "scheduler", "parts_dir")
RETRIEVAL_ONLY = ("queries", "qrels", "query_id_column", "ignore_missing", "range_min", "range_max",
                  "absolute_margin", "relative_margin", "max_score", "min_score", "max_positive_similarity",
                  "sampling", "format_", "text_column", "save_candidates", "from_candidates", "relative_margins")
LABEL_ONLY_FLAGS = {"positives_count": "--positives-count", "batch_size": "--batch-size", "max_items": "--max-items",
                    "label_column": "--label-column", "parts_dir": "--parts-dir"}


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _flag(name: str) -> str:
    return LABEL_ONLY_FLAGS.get(name, "--" + name.rstrip("_").replace("_", "-"))


def is_retrieval(ctx: typer.Context) -> bool:
    """Retrieval mode: --queries, --qrels or --from-candidates was given."""
    return any(_given(ctx, name) for name in ("queries", "qrels", "from_candidates"))


def refuse_retrieval_options(ctx: typer.Context) -> None:
    """Label mode refuses the retrieval options."""
    for name in RETRIEVAL_ONLY:
        if _given(ctx, name):
            raise OptionError(f"{_flag(name)} applies to retrieval mining (with --queries and --qrels)")


def run(ctx: typer.Context, **o: Any) -> None:
    """Check the options, run one retrieval mining call, render the report."""
    # Imported here: label mining and --help do not pay for them.
    from cli.render import mine_retrieval as render
    from cli.render import progress_bar
    from embedkit.mining.retrieval import SearchSpec
    from embedkit.engines import make_engine
    from embedkit.mining.retrieval_job import RetrievalJob, run_retrieval_mining

    with reported_errors():
        for name in LABEL_ONLY:
            if _given(ctx, name):
                raise OptionError(f"{_flag(name)} applies to label mining, not to retrieval mining "
                                  "(--queries/--qrels/--from-candidates)")
        metric = o["metric"] or "cosine"
        if metric == "euclidean":
            raise OptionError("--metric euclidean: retrieval mining ranks by similarity; use cosine or dot")
        if o["index"] == "auto":
            o["index"] = "exact"
        if o["json"] and o["output"] == "-":
            raise OptionError("--json and -o - would both write to stdout; write the output to a file")
        if o["budget_mib"] <= 0:
            raise OptionError(f"--budget-mib must be > 0; got {o['budget_mib']}")
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
            negatives=3 if o["negatives"] is None else o["negatives"], range_min=o["range_min"],
            range_max=o["range_max"], absolute_margin=o["absolute_margin"], relative_margin=o["relative_margin"],
            max_score=o["max_score"], min_score=o["min_score"],
            max_positive_similarity=o["max_positive_similarity"], sampling=o["sampling"], seed=o["seed"])
        search = SearchSpec(metric=metric, index=o["index"], check_recall=o["check_recall"], nlist=o["nlist"],
                            nprobe=o["nprobe"], ef_search=o["ef_search"], seed=o["seed"],
                            budget_mib=o["budget_mib"])
        job = RetrievalJob(
            corpus=o["embeddings"], queries=o["queries"], qrels=o["qrels"], selection=selection, search=search,
            from_candidates=o["from_candidates"], column=o["column"], id_column=o["id_column"],
            query_id_column=o["query_id_column"], text_column=o["text_column"],
            ignore_missing=o["ignore_missing"], margins=margins, output=o["output"], fmt=o["format_"],
            save_candidates=o["save_candidates"])
        with make_engine("local", workers=o["workers"]) as engine, \
                progress_bar("mining (retrieval)", enabled=not o["quiet"] and not o["json"]) as progress:
            result = run_retrieval_mining(job, engine=engine, progress=progress)
    render.report(result, as_json=o["json"])
