"""Summary tables, JSON and item files for ``embedkit mine``."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from embedkit.dataset import Dataset
from embedkit.mining.strategies import MineResult
from embedkit.output import MINED_KEY, write_table

from . import (
    labels_text,
    number,
    print_json,
    rows_of,
    shard_count,
    shards_note,
    stderr_console,
    stdout_console,
)

INDEX_COLUMNS = ("anchor", "positive", "negative", "i", "j")
DISTANCE_NAMES = {"d_ap": "d_ap", "d_an": "d_an", "gap": "d_an − d_ap", "d": "d"}
STATS = ("min", "p05", "p25", "p50", "p75", "p95", "max")
PREVIEW = 5


def summary_payload(result: MineResult, dataset: Dataset, output: str | None) -> dict[str, Any]:
    """The ``--json`` contract (README: "`embedkit mine`"): stable keys scripts depend on."""
    return {
        "strategy": result.strategy,
        "definition": result.definition,
        "kind": result.kind,
        "items": result.count,
        "columns": list(result.items),
        "rows": result.rows,
        "anchors": result.anchors,
        "anchors_with_items": result.anchors - result.anchors_with_none,
        "anchors_with_none": result.anchors_with_none,
        "anchors_without_positive": result.anchors_without_positive,
        "pairs_searched": result.slots,
        "pairs_with_none": result.slots_with_none,
        "fallback_items": result.fallback_items,
        "index": {"used": result.index, "description": result.index_description, "reason": result.index_reason},
        "recall": None if result.recall is None else {"value": result.recall, "anchors": result.recall_anchors},
        "batches": result.batches,
        "metric": result.metric,
        "params": result.params,
        "distances": result.distances,
        "seconds": result.seconds,
        "output": output,
        "embeddings": {"source": dataset.source, "rows": dataset.rows, "dim": dataset.dim,
                       "dtype": str(dataset.embeddings.dtype), "labels": dataset.label_source,
                       "shards": shard_count(dataset.shards)},
    }


def summary(result: MineResult, dataset: Dataset, *, output: str | None, as_json: bool, engine: str = "") -> None:
    """JSON on stdout, or the Rich summary (on stderr when stdout carries the items)."""
    if as_json:
        print_json({**summary_payload(result, dataset, output), "engine": engine or None})
        return
    console = stderr_console() if output == "-" else stdout_console()
    params = ", ".join(f"{k} = {v}" for k, v in result.params.items())
    console.print(f"[bold]mine {result.strategy}[/bold] on {dataset.source} ({dataset.rows:,} × {dataset.dim}"
                  f"{shards_note(dataset.shards)})")
    console.print(f"  definition  {result.definition}")
    console.print(f"  labels      {labels_text(dataset)}")
    console.print(f"  params      {params}")
    console.print(f"  index       {result.index}: {result.index_description} ({result.index_reason})")
    if engine:
        console.print(f"  engine      {engine}")
    if result.batches is not None:
        console.print(f"  batches     {result.batches:,}")
    if result.recall is not None:
        console.print(f"  recall      {number(result.recall)} of the exact nearest negatives "
                      f"({result.recall_anchors:,} sampled anchors)")
    counts = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    counts.add_column("what")
    counts.add_column("count", justify="right")
    counts.add_row("anchors", f"{result.anchors:,}")
    counts.add_row(f"{result.kind} found", f"{result.count:,}")
    counts.add_row("anchors with none", f"{result.anchors_with_none:,}")
    if result.kind == "triplets":
        counts.add_row("rows without a positive (not anchors)", f"{result.anchors_without_positive:,}")
    if result.strategy in ("semi-hard", "easy"):
        counts.add_row("(anchor, positive) pairs searched", f"{result.slots:,}")
        counts.add_row("(anchor, positive) pairs with none in band", f"{result.slots_with_none:,}")
    if result.fallback_items:
        counts.add_row("triplets from --fallback", f"{result.fallback_items:,}")
    console.print()
    console.print(counts)
    if result.distances:
        table = Table(title="Distances (quantiles)", title_justify="left", box=None, padding=(0, 1))
        stats = [s for s in STATS if s in next(iter(result.distances.values()))]
        table.add_column("", no_wrap=True)
        for name in stats:
            table.add_column(name, justify="right", no_wrap=True)
        for column, values in result.distances.items():
            table.add_row(DISTANCE_NAMES.get(column, column), *(number(values[s], 3) for s in stats))
        console.print()
        console.print(table)
    if output is None and result.count:
        shown = min(PREVIEW, result.count)
        preview = {k: v[:shown] for k, v in result.items.items()}
        table = Table(title=f"First {shown} of {result.count:,} {result.kind} (write them with -o FILE)",
                      title_justify="left", show_edge=False, pad_edge=False)
        for name in preview:
            table.add_column(name, justify="right")
        for row in rows_of(preview):
            table.add_row(*(number(v) for v in row.values()))
        console.print()
        console.print(table)
    console.print()
    where = f" → {output if output != '-' else 'stdout'}" if output is not None else ""
    console.print(f"[bold]{result.count:,} {result.kind}[/bold]{where} in {result.seconds:.2f} s")


def write_items(result: MineResult, dataset: Dataset, output: str, form: dict[str, Any] | None = None) -> None:
    """The items to ``output`` (atomic), with ``*_id`` columns when the dataset has ids."""
    items = dict(result.items)
    if dataset.ids is not None:
        for name in INDEX_COLUMNS:
            if name in result.items:
                items[f"{name}_id"] = dataset.ids[result.items[name]]
    # Parquet keeps how the items were mined, so `embedkit loss --triplets` can score them in the same form.
    metadata = {MINED_KEY: json.dumps(form)} if form else None
    write_table(items, output, inputs=[dataset.source], metadata=metadata)
