"""Tables and JSON for ``embedkit eval --qrels`` (IR figures)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from embedkit.dataset import Dataset
from embedkit.ireval import IR_FAMILIES, IRResult

from . import number, print_json, stdout_console

DEFINITIONS = {
    "ndcg": "Σ_{i≤K} g_i/log2(i+1) ÷ the same over the ideal order (g = grade)",
    "mrr": "1/rank of the first relevant document within K, else 0",
    "map": "(1/R)·Σ_{i≤K, relevant} P@i (R = relevant documents in the qrels)",
    "recall": "relevant documents in the top K ÷ R",
    "precision": "relevant documents in the top K ÷ K",
}


def ir_payload(result: IRResult, corpus: Dataset | None, queries: Dataset | None) -> dict[str, Any]:
    """The ``--json`` contract: every figure at the top level (``ndcg_at_10``, ...), the counts,
    and the inputs."""
    payload: dict[str, Any] = dict(result.figures)
    payload.update({
        "queries": result.queries,
        "skipped_queries": result.skipped_queries,
        "relevant_judgements": result.relevant_judgements,
        "dropped_judgements": result.dropped_judgements,
        "queries_missing_from_run": result.queries_missing_from_run,
        "ks": list(result.ks),
        "metric": result.metric,
        "documents": result.documents,
        "figures": dict(result.figures),
        "inputs": {
            "corpus": None if corpus is None else {"source": corpus.source, "rows": corpus.rows, "dim": corpus.dim},
            "queries": None if queries is None else {"source": queries.source, "rows": queries.rows},
            "qrels": result.qrels_source,
            "run": result.run_source,
        },
    })
    return payload


def ir_evaluation(result: IRResult, corpus: Dataset | None, queries: Dataset | None, *, as_json: bool) -> None:
    if as_json:
        print_json(ir_payload(result, corpus, queries))
        return
    console = stdout_console()
    if result.run_source is not None:
        console.print(f"[bold]eval[/bold] run {result.run_source} with qrels {result.qrels_source}")
    else:
        assert corpus is not None and queries is not None
        console.print(f"[bold]eval[/bold] {queries.source} ({queries.rows:,} queries) against {corpus.source} "
                      f"({corpus.rows:,} documents × {corpus.dim}), qrels {result.qrels_source}")
        console.print(f"  ranking    exact, {result.metric}, depth {max(result.ks):,}; ties by ascending corpus row")
    notes = []
    if result.skipped_queries:
        notes.append(f"{result.skipped_queries:,} skipped (no relevant document in the qrels)")
    if result.queries_missing_from_run:
        notes.append(f"{result.queries_missing_from_run:,} missing from the run (scored 0)")
    console.print(f"  queries    {result.queries:,} evaluated" + (f"; {'; '.join(notes)}" if notes else ""))
    if result.dropped_judgements:
        console.print(f"  qrels      {result.dropped_judgements:,} judgements dropped (--ignore-missing: ids the "
                      "inputs lack)")
    console.print()
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("figure", justify="left")
    for k in result.ks:
        table.add_column(f"@{k}", justify="right")
    table.add_column("definition (per query, averaged)", justify="left")
    for family in IR_FAMILIES:
        table.add_row(family, *(number(result.figures[f"{family}_at_{k}"]) for k in result.ks), DEFINITIONS[family])
    console.print(table)
