"""``embedkit eval``: retrieval metrics (precision@1, R-precision, MAP@R, recall@k) from exact k-NN."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli import options as opt
from cli.errors import reported_errors
from cli.inputs import guarded_inputs, load_inputs, parse_ints, refuse_output_in_shard_sets
from cli.render import eval as render
from cli.render import ireval as render_ir
from cli.render import progress_bar
from embedkit.engines import make_engine
from embedkit.errors import OptionError
from embedkit.io import Dataset
from embedkit.metrics import evaluate_retrieval

EPILOG = (
    "Examples:  embedkit eval emb.npy  ·  embedkit eval emb.parquet --metric cosine --k 1,10,100 --json  ·  "
    "embedkit eval --queries q.npy --reference gallery.npy --per-class  ·  "
    "embedkit eval corpus.parquet --queries queries.parquet --qrels qrels.tsv --id-column id --k 10 --k 100  ·  "
    "embedkit eval --qrels qrels.tsv --from-run run.txt"
)
RUN_PANEL = "Retrieval (qrels)"


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
    k: Annotated[Optional[list[str]], typer.Option(
        "--k", show_default=False, help="Cut-offs, repeatable or comma-separated. Labels: the k of recall_at_k "
        "(default 1,5,10). With --qrels: the K of every IR figure (default 10 and 100).")] = None,
    metric: opt.RankingMetricOpt = None,
    queries: Annotated[Optional[str], typer.Option(
        "--queries", help="Query embeddings for a gallery split: each query is searched in the reference "
        "(EMB or --reference) and nothing is excluded.")] = None,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", help="Reference (gallery) embeddings, with --queries; the same as giving EMB.")] = None,
    query_labels: Annotated[Optional[str], typer.Option(
        "--query-labels", help="Labels of --queries (default: its label column or sidecar file).")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Also a table of the metrics per label.")] = False,
    qrels: opt.QrelsOpt = None,
    id_column: opt.CorpusIdColumnOpt = None,
    query_id_column: opt.QueryIdColumnOpt = None,
    ignore_missing: opt.IgnoreMissingOpt = False,
    per_query: Annotated[Optional[str], typer.Option(
        "--per-query", rich_help_panel=RUN_PANEL, show_default=False,
        help="With --qrels: write every evaluated query's figures to FILE (.parquet, .csv, .jsonl).")] = None,
    run: Annotated[Optional[str], typer.Option(
        "--run", rich_help_panel=RUN_PANEL, show_default=False,
        help="With --qrels: write the ranking as a TREC run file 'qid Q0 docid rank score embedkit' (score: "
        "similarity, or minus the Euclidean distance), for trec_eval.")] = None,
    from_run: Annotated[Optional[str], typer.Option(
        "--from-run", rich_help_panel=RUN_PANEL, show_default=False,
        help="With --qrels: evaluate this TREC run file instead of embeddings (score descending, ties by its "
        "rank column).")] = None,
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

    With --qrels (EMB = corpus, --queries = queries): ndcg_at_K, mrr_at_K, map_at_K, recall_at_K
    and precision_at_K as trec_eval (ndcg_cut, map_cut, recall, P) and MTEB (MRR@K) define them,
    graded gains; every query ranked exactly against the whole corpus, ties by ascending corpus
    row; queries without a relevant document are skipped and counted.
    """
    if qrels is not None or from_run is not None:
        with reported_errors():
            if qrels is None:
                raise OptionError("--from-run needs --qrels (the judgements to evaluate the run with)")
            for name, value in (("--reference", reference), ("--query-labels", query_labels), ("--labels", labels),
                                ("--label-column", label_column), ("--per-class", per_class or None)):
                if value is not None:
                    raise OptionError(f"{name} applies to label-based eval, not to --qrels")
            _qrels_eval(embeddings, queries, qrels, from_run=from_run, ks=_ks(k), metric=metric or "cosine",
                        column=column, id_column=id_column, query_id_column=query_id_column,
                        ignore_missing=ignore_missing, per_query=per_query, run=run, as_json=json, quiet=quiet,
                        workers=workers, engine=engine, scheduler=scheduler, parts_dir=parts_dir)
        return
    with reported_errors():
        for name, value in (("--id-column", id_column), ("--query-id-column", query_id_column),
                            ("--per-query", per_query), ("--run", run), ("--ignore-missing", ignore_missing or None)):
            if value is not None:
                raise OptionError(f"{name} applies to retrieval with --qrels")
        if metric == "dot":
            raise OptionError("--metric dot applies to retrieval with --qrels; label eval ranks by euclidean or cosine")
        ks = _ks(k) or parse_ints("1,5,10", "--k")
        reference_set, query_set = load_split(embeddings, queries, reference, query_labels,
                                              labels=labels, column=column, label_column=label_column)
        with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
                progress_bar("eval", enabled=not quiet) as progress:
            result = evaluate_retrieval(reference_set, query_set, ks=ks, metric=metric or "euclidean", per_class=per_class,
                                        threads=workers, engine=runner, progress=progress)
    render.evaluation(result, reference_set, query_set, as_json=json)


def _ks(values: list[str] | None) -> tuple[int, ...]:
    """``--k 10 --k 100`` and ``--k 10,100`` alike; ``()`` when not given."""
    return tuple(k for value in values or () for k in parse_ints(value, "--k"))


def _qrels_eval(
    embeddings: str | None, queries: str | None, qrels: str, *, from_run: str | None, ks: tuple[int, ...],
    metric: str, column: str | None, id_column: str | None, query_id_column: str | None, ignore_missing: bool,
    per_query: str | None, run: str | None, as_json: bool, quiet: bool, workers: int | None, engine: str,
    scheduler: str | None, parts_dir: str | None,
) -> None:
    from embedkit.ireval import DEFAULT_IR_KS, evaluate_qrels, evaluate_run, read_run, write_run
    from embedkit.output import check_output_path, table_format, write_table
    from embedkit.qrels import read_qrels

    ks = ks or DEFAULT_IR_KS
    named = {"the corpus": embeddings, "--queries": queries, "--qrels": qrels, "--from-run": from_run}
    from_stdin = [name for name, value in named.items() if value == "-"]
    if len(from_stdin) > 1:
        raise OptionError(f"only one input can be read from stdin ('-'); got {' and '.join(from_stdin)}")
    inputs = guarded_inputs([embeddings, queries], [qrels, from_run])
    for name, path in (("--run", run), ("--per-query", per_query)):
        if path == "-":
            raise OptionError(f"{name} -: give a file name (stdout carries the figures)")
    for path in (per_query, run):
        if path is not None:
            check_output_path(path, inputs)
            refuse_output_in_shard_sets(path, [embeddings, queries])
    if per_query is not None:
        table_format(per_query)
    if from_run is not None:
        for name, value in (("EMB (the corpus)", embeddings), ("--queries", queries), ("--run", run),
                            ("--id-column", id_column), ("--query-id-column", query_id_column)):
            if value is not None:
                raise OptionError(f"--from-run evaluates a run file without embeddings; drop {name}")
        result = evaluate_run(read_run(from_run), read_qrels(qrels), ks=ks, per_query=per_query is not None)
        corpus_set = query_set = None
    else:
        if queries is None:
            raise OptionError("--qrels needs --queries QUERIES (the query embeddings; EMB is the corpus)")
        judgements = read_qrels(qrels)
        corpus_set = load_inputs(embeddings, column=column, id_column=id_column)
        query_set = load_inputs(queries, column=column, id_column=query_id_column or id_column)
        with make_engine(engine, workers=workers, scheduler=scheduler, parts_dir=parts_dir) as runner, \
                progress_bar("eval", enabled=not quiet) as progress:
            result = evaluate_qrels(corpus_set, query_set, judgements, ks=ks, metric=metric,  # type: ignore[arg-type]
                                    ignore_missing=ignore_missing, per_query=per_query is not None,
                                    keep_run=run is not None, engine=runner, progress=progress)
    if per_query is not None and result.per_query is not None:
        write_table(result.per_query, per_query, inputs=inputs)
    if run is not None and result.run is not None:
        write_run(result.run, run, inputs=tuple(inputs))
    render_ir.ir_evaluation(result, corpus_set, query_set, as_json=as_json)
