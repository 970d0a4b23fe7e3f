"""Tables and JSON for ``embedkit loss``."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from embedkit.dataset import Dataset
from embedkit.losses.result import LossResult
from embedkit.output import write_table

from . import (
    labels_text,
    number,
    percent,
    print_json,
    rows_of,
    shard_count,
    shards_note,
    stderr_console,
    stdout_console,
)

HEADINGS = {
    "y": "y", "d": "D", "cos": "cos", "d_ap": "d(a,p)", "d_an": "d(a,n)", "s_ap": "s(a,p)",
    "neg_lse": "lse_neg", "s_pos": "f·f⁺", "l2": "L2 term", "positives": "|P|",
    "mean_s_ap": "mean s(a,p)", "lse": "lse_all", "loss": "loss",
}
ITEM_NAMES = {
    "contrastive": "pairs", "bce": "pairs", "triplet": "triplets", "npair": "pairs",
    "infonce": "positive pairs", "supcon": "anchors",
}
INDEX_COLUMNS = ("i", "j", "anchor", "positive", "negative")


def _label(dataset: Dataset, row: int) -> str:
    if dataset.ids is not None:
        return str(dataset.ids[row])
    return str(row)


def _item_cells(result: LossResult, row: dict[str, Any], dataset: Dataset) -> list[str]:
    cols = result.columns
    cells: list[str] = []
    if "i" in cols:
        cells.append(f"({_label(dataset, row['i'])}, {_label(dataset, row['j'])})")
    elif "negative" in cols:
        cells.append(f"({_label(dataset, row['anchor'])}, {_label(dataset, row['positive'])}, {_label(dataset, row['negative'])})")
    else:
        cells.append(_label(dataset, row["anchor"]))
        if "positive" in cols:
            cells.append(_label(dataset, row["positive"]))
    for name in cols:
        if name in INDEX_COLUMNS:
            continue
        value = row[name]
        if name == "y":
            cells.append("1 (same)" if value else "0 (diff)")
        else:
            cells.append(number(value))
    return cells


def _item_headings(result: LossResult) -> list[str]:
    cols = result.columns
    if "i" in cols:
        heads = ["pair"]
    elif "negative" in cols:
        heads = ["(a, p, n)"]
    else:
        heads = ["anchor"] + (["positive"] if "positive" in cols else [])
    return heads + [HEADINGS.get(c, c) for c in cols if c not in INDEX_COLUMNS]


def _items_table(result: LossResult, table: dict[str, np.ndarray], dataset: Dataset) -> Table:
    out = Table(show_edge=False, pad_edge=False)
    for k, heading in enumerate(_item_headings(result)):
        out.add_column(heading, justify="left" if k == 0 else "right")
    for row in rows_of(table):
        out.add_row(*_item_cells(result, row, dataset))
    return out


def _params_text(result: LossResult) -> str:
    shown = {k: v for k, v in result.params.items() if not (k == "normalize" and not v)}
    return ", ".join(f"{k} = {v}" for k, v in shown.items())


def loss(result: LossResult, dataset: Dataset, *, as_json: bool, to_stderr: bool = False, engine: str = "") -> None:
    """Print the result: one JSON object, or the header, trace tables and totals."""
    if as_json:
        print_json(loss_payload(result, dataset, engine))
        return
    console = stderr_console() if to_stderr else stdout_console()
    items = ITEM_NAMES.get(result.kind, "items")
    console.print(f"[bold]{result.kind} loss[/bold] on {dataset.source} ({dataset.rows:,} × {dataset.dim}"
                  f"{shards_note(dataset.shards)})")
    console.print(f"  formula    {result.formula}")
    console.print(f"  distance   {result.distance}")
    console.print(f"  labels     {labels_text(dataset)}")
    console.print(f"  convention {result.convention}")
    console.print(f"  params     {_params_text(result)}")
    console.print(f"  items      {result.source}")
    console.print(f"  reduction  {result.reduction}")
    if engine:
        console.print(f"  engine     {engine}")
    if "similar_pairs" in result.details:
        similar, dissimilar = result.details["similar_pairs"], result.details["dissimilar_pairs"]
        ratio = f"{similar / (similar + dissimilar):.2%} similar" if similar + dissimilar else ""
        console.print(f"  pairs      {similar:,} similar, {dissimilar:,} dissimilar ({ratio})")
    if result.count == 0:
        console.print(f"\nNo {items}: the loss is 0 by definition.")
        return
    if len(result.head.get("loss", ())):
        shown = len(result.head["loss"])
        console.print(f"\nTrace: first {shown} of {result.count:,} {items}")
        console.print(_items_table(result, result.head, dataset))
    if len(result.top.get("loss", ())) and not _same_rows(result.head, result.top, result.count):
        console.print(f"\nTop {len(result.top['loss'])} contributors")
        console.print(_items_table(result, result.top, dataset))
    console.print()
    console.print(
        f"Total loss = {number(result.total)} over {result.count:,} {items}, "
        f"{result.active:,} active (loss > 0); mean {number(result.mean)}"
    )
    top = result.max_item
    if top is not None and result.total > 0:
        cells = _item_cells(result, top, dataset)
        console.print(
            f"Largest contributor: {cells[0]} with {number(top['loss'])} "
            f"({percent(top['loss'], result.total)} of the total)"
        )
    value = "per item (see --output)" if result.loss is None else number(result.loss)
    console.print(f"[bold]loss ({result.reduction}) = {value}[/bold]")
    if result.sweep:
        table = Table(show_edge=False, pad_edge=False)
        for heading in ("margin", f"loss ({result.reduction})", "active", "total"):
            table.add_column(heading, justify="right")
        for point in result.sweep:
            table.add_row(number(point.margin, 2), number(point.loss), f"{point.active:,}", number(point.total))
        console.print("\nMargin sensitivity")
        console.print(table)


def _same_rows(head: dict[str, np.ndarray], top: dict[str, np.ndarray], count: int) -> bool:
    """True when the trace already lists every item (the top table would repeat it)."""
    return len(head.get("loss", ())) >= count


def loss_payload(result: LossResult, dataset: Dataset, engine: str = "") -> dict[str, Any]:
    """The ``--json`` contract (see the README): stable keys scripts depend on."""
    payload: dict[str, Any] = {
        "kind": result.kind,
        "loss": result.loss,
        "reduction": result.reduction,
        "count": result.count,
        "active": result.active,
        "total": result.total,
        "mean": result.mean,
        "formula": result.formula,
        "distance": result.distance,
        "convention": result.convention,
        "params": result.params,
        "items": result.source,
        "engine": engine or None,
        "embeddings": {"source": dataset.source, "rows": dataset.rows, "dim": dataset.dim,
                       "dtype": str(dataset.embeddings.dtype), "labels": dataset.label_source,
                       "shards": shard_count(dataset.shards)},
        "max_item": result.max_item,
        "trace": rows_of(result.head),
        "top": rows_of(result.top),
        "details": result.details,
    }
    if result.sweep:
        payload["sweep"] = [{"margin": p.margin, "loss": p.loss, "active": p.active, "total": p.total}
                            for p in result.sweep]
    if result.loss is None and result.items is not None:
        payload["losses"] = result.items["loss"]
    return payload


def write_items(result: LossResult, dataset: Dataset, output: str) -> None:
    """Per-item rows to ``output`` (atomic), with id columns when the dataset has ids."""
    items = dict(result.items or {})
    if dataset.ids is not None:
        for name in INDEX_COLUMNS:
            if name in items:
                items[f"{name}_id"] = dataset.ids[items[name]]
    write_table(items, output, inputs=[dataset.source])
