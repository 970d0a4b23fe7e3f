"""Tables and JSON for ``embedkit eval``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from embedkit.dataset import Dataset
from embedkit.metrics import RetrievalMetrics

from . import (
    labels_text,
    number,
    print_json,
    rows_of,
    shard_count,
    shards_note,
    stdout_console,
)

DEFINITIONS = {
    "precision_at_1": "the nearest neighbour has the query's label",
    "r_precision": "(1/R)·Σ_{i≤R} rel(i): same-label share of the R nearest",
    "map_at_r": "(1/R)·Σ_{i≤R} rel(i)·P(i), P(i) = same-label share of the i nearest",
}


SHORT = {"evaluated": "eval'd", "precision_at_1": "P@1", "r_precision": "R-prec", "map_at_r": "MAP@R"}


def _recall_definition(k: int) -> str:
    return f"at least one same-label row among the {k} nearest"


def evaluation_payload(result: RetrievalMetrics, reference: Dataset, queries: Dataset | None) -> dict[str, Any]:
    """The ``--json`` contract: stable keys scripts depend on."""
    payload: dict[str, Any] = {
        "metric": result.metric,
        "precision_at_1": result.precision_at_1,
        "r_precision": result.r_precision,
        "map_at_r": result.map_at_r,
        "recall_at_k": {str(k): v for k, v in result.recall_at_k.items()},
        "figures": result.figures,
        "queries": result.queries,
        "evaluated": result.evaluated,
        "lone_queries": result.lone,
        "references": result.references,
        "same_source": result.same_source,
        "search_k": result.search_k,
        "largest_class": result.largest_class,
        "embeddings": {"source": reference.source, "rows": reference.rows, "dim": reference.dim,
                       "dtype": str(reference.embeddings.dtype), "labels": reference.label_source,
                       "shards": shard_count(reference.shards)},
        "query_embeddings": None if queries is None else {
            "source": queries.source, "rows": queries.rows, "labels": queries.label_source,
            "shards": shard_count(queries.shards)},
    }
    if result.per_class is not None:
        payload["per_class"] = rows_of(_named(result))
    return payload


def _named(result: RetrievalMetrics) -> dict[str, Any]:
    table = dict(result.per_class or {})
    if result.label_names is not None and "label" in table:
        table["label"] = result.label_names[table["label"]]
    return table


def evaluation(result: RetrievalMetrics, reference: Dataset, queries: Dataset | None, *, as_json: bool,
               engine: str = "") -> None:
    if as_json:
        print_json({**evaluation_payload(result, reference, queries), "engine": engine or None})
        return
    console = stdout_console()
    if queries is None:
        console.print(f"[bold]eval[/bold] {reference.source} ({reference.rows:,} × {reference.dim}"
                      f"{shards_note(reference.shards)}): every row "
                      f"a query against the other {reference.rows - 1:,} (self excluded by id)")
    else:
        console.print(f"[bold]eval[/bold] {queries.source} ({queries.rows:,} queries{shards_note(queries.shards)}) "
                      f"against {reference.source} ({reference.rows:,} references{shards_note(reference.shards)})")
    console.print(f"  metric     {result.metric}, exact FAISS k-NN, k = {result.search_k:,} "
                  f"(largest class {result.largest_class:,})")
    console.print(f"  labels     {labels_text(reference)}"
                  + (f"; queries: {labels_text(queries)}" if queries is not None else ""))
    if engine:
        console.print(f"  engine     {engine}")
    skipped = f"; {result.lone:,} lone queries skipped (no other row with their label)" if result.lone else ""
    console.print(f"  queries    {result.evaluated:,} evaluated{skipped}")
    console.print()
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("metric", justify="left")
    table.add_column("value", justify="right")
    table.add_column("definition (per query, averaged)", justify="left")
    for name, definition in DEFINITIONS.items():
        table.add_row(name, number(getattr(result, name)), definition)
    for k, value in result.recall_at_k.items():
        table.add_row(f"recall_at_{k}", number(value), _recall_definition(k))
    console.print(table)
    if result.per_class is not None:
        console.print()
        console.print(per_class_table(result))


def per_class_table(result: RetrievalMetrics) -> Table:
    table = Table(title="Per class", title_justify="left", show_edge=False, pad_edge=False)
    named = _named(result)
    columns = list(named)
    for k, name in enumerate(columns):
        table.add_column(SHORT.get(name, name.replace("recall_at_", "R@")), justify="left" if k == 0 else "right")
    for row in rows_of(named):
        cells = [str(row["label"]), str(row["queries"]), str(row["evaluated"])]
        cells += ["-" if row["evaluated"] == 0 else number(row[name]) for name in columns[3:]]
        table.add_row(*cells)
    return table
