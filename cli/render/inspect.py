"""Tables, terminal histogram, JSON and the ``--plot`` picture of ``embedkit inspect``."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from embedkit.errors import OptionError
from embedkit.inspection import Inspection, quantile_name
from embedkit.output import atomic_output
from embedkit.pair_distances import PairDistances

from . import labels_text, number, print_json, shard_count, shards_note, stdout_console

BAR_WIDTH = 22


def inspection_payload(result: Inspection) -> dict[str, Any]:
    """The ``--json`` contract (README: "`embedkit inspect`")."""
    payload: dict[str, Any] = {
        "source": result.source, "rows": result.rows, "dim": result.dim, "dtype": result.dtype,
        "shards": shard_count(result.shards),
        "shard_files": [{"path": s.path, "kind": s.kind, "start": s.start, "stop": s.stop} for s in result.shards],
        "nan_rows": result.nan_rows, "inf_rows": result.inf_rows, "normalize": result.normalize,
        "figures": result.figures, "notes": list(result.notes),
        "norms": None, "duplicates": None, "labels": None, "distances": None,
    }
    if result.norms is not None:
        n = result.norms
        payload["norms"] = {"min": n.min, "mean": n.mean, "max": n.max, "zero_rows": n.zero_rows,
                            "l2_normalised": n.normalised}
    if result.duplicates is not None:
        d = result.duplicates
        payload["duplicates"] = {"rows": d.rows, "groups": d.groups, "conflicting_label_groups": d.conflicting_groups,
                                 "example": list(d.example) if d.example else None}
    if result.labels is not None:
        lab = result.labels
        payload["labels"] = {
            "classes": lab.classes, "singleton_classes": lab.singleton_classes,
            "counts": {str(name): int(c) for name, c in zip(lab.names.tolist(), lab.counts.tolist())},
            "positive_pairs": lab.positive_pairs, "negative_pairs": lab.negative_pairs,
            "positive_fraction": lab.positive_fraction,
        }
    if result.distances is not None:
        payload["distances"] = _distances_payload(result.distances)
    return payload


def _distances_payload(d: PairDistances) -> dict[str, Any]:
    def dist(x: Any) -> dict[str, Any]:
        return {"count": x.count, "mean": x.mean, "min": x.min, "max": x.max,
                "quantiles": {quantile_name(q): v for q, v in x.quantiles.items()}}

    m = d.margin
    return {
        "distance": "euclidean", "method": d.method, "sample": d.sample, "seed": d.seed,
        "positive": dist(d.positive), "negative": dist(d.negative),
        "histogram": {"edges": d.edges, "positive": d.positive_counts, "negative": d.negative_counts},
        "overlap": d.overlap, "ranking_error": d.ranking_error,
        "margin": {"suggested": m.margin, "negatives_inside": m.negatives_inside,
                   "positives_beyond": m.positives_beyond, "rule": m.rule, "reasoning": list(m.reasoning),
                   "candidates": [{"margin": c.margin, "negatives_inside": c.negatives_inside,
                                   "positives_beyond": c.positives_beyond} for c in m.candidates]},
    }


def inspection(result: Inspection, *, as_json: bool, dataset: Any = None) -> None:
    if as_json:
        print_json(inspection_payload(result))
        return
    console = stdout_console()
    console.print(f"[bold]inspect[/bold] {result.source}: {result.rows:,} rows × {result.dim} ({result.dtype}"
                  f"{shards_note(result.shards)})")
    bad = result.nonfinite_rows
    console.print(f"  NaN/Inf    {result.nan_rows:,} rows with NaN, {result.inf_rows:,} with Inf"
                  + ("  [bold red]<- not finite[/bold red]" if bad else ""))
    if result.norms is not None:
        n = result.norms
        looks = "yes" if n.normalised else "no"
        console.print(f"  norms      min {number(n.min)}, mean {number(n.mean)}, max {number(n.max)}; "
                      f"L2-normalised: {looks}" + (f"; {n.zero_rows:,} zero rows" if n.zero_rows else ""))
    if result.duplicates is not None:
        d = result.duplicates
        text = f"  duplicates {d.rows:,} rows repeat an earlier row ({d.groups:,} distinct vectors)"
        if d.example:
            text += f", e.g. rows {d.example[0]} and {d.example[1]}"
        if d.conflicting_groups:
            text += f"; {d.conflicting_groups:,} of them carry different labels"
        console.print(text)
    if result.labels is not None:
        lab = result.labels
        where = f"{dataset.label_source}: " if dataset is not None and dataset.label_source else ""
        console.print(f"  labels     {where}{lab.classes:,} classes, {lab.singleton_classes:,} with a single row; "
                      f"sizes {_sizes(lab.counts)}")
        ratio = lab.negative_pairs / lab.positive_pairs if lab.positive_pairs else float("inf")
        console.print(f"  pairs      {lab.positive_pairs:,} positive, {lab.negative_pairs:,} negative: "
                      f"{100 * lab.positive_fraction:.2f} % positive, {number(ratio, 1)} negatives per positive")
    elif dataset is not None:
        console.print(f"  labels     {labels_text(dataset)}")
    for note in result.notes:
        console.print(f"  note       {note}")
    if result.distances is not None:
        _print_distances(console, result.distances, result.normalize)


def _sizes(counts: np.ndarray) -> str:
    return f"min {int(counts.min())}, median {int(np.median(counts))}, max {int(counts.max())}"


def _print_distances(console: Any, d: PairDistances, normalize: bool) -> None:
    console.print()
    how = ("all pairs i < j, exact" if d.method == "exact" else
           f"sampled: {d.sample:,} pairs of each kind, uniform with replacement, seed {d.seed}")
    console.print(f"[bold]Pair distances[/bold] (Euclidean{', L2-normalised rows' if normalize else ''}; {how})")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("D", justify="left")
    table.add_column("positive pairs", justify="right")
    table.add_column("negative pairs", justify="right")
    table.add_row("count", f"{d.positive.count:,}", f"{d.negative.count:,}")
    table.add_row("mean", number(d.positive.mean), number(d.negative.mean))
    for q in d.positive.quantiles:
        table.add_row(quantile_name(q), number(d.positive.quantiles[q]), number(d.negative.quantiles[q]))
    console.print(table)
    console.print()
    console.print(histogram_table(d))
    console.print(f"overlap {number(d.overlap)} (shared histogram mass; 0 = separated), "
                  f"ranking error {number(d.ranking_error)} (P(a negative pair is closer than a positive one))")
    m = d.margin
    console.print()
    shown = "none" if np.isnan(m.margin) else f"{m.margin:.4g}"
    console.print(f"[bold]Suggested margin: {shown}[/bold]  (rule: {m.rule})")
    for line in m.reasoning:
        console.print(f"  - {line}")
    cands = Table(show_edge=False, pad_edge=False)
    for heading in ("margin", "negatives inside (D < m)", "positives beyond (D > m)"):
        cands.add_column(heading, justify="right")
    for c in m.candidates:
        mark = " <- suggested" if c.margin == m.margin else ""
        cands.add_row(f"{c.margin:.4g}{mark}", f"{100 * c.negatives_inside:.2f} %", f"{100 * c.positives_beyond:.2f} %")
    if m.candidates:
        console.print(cands)


def histogram_table(d: PairDistances) -> Table:
    """A terminal histogram: one row per bin, bars scaled to each kind's own largest bin."""
    table = Table(title="Distance histogram (each kind as a share of its own pairs)", title_justify="left",
                  show_edge=False, pad_edge=False)
    table.add_column("D", justify="right")
    table.add_column("pos %", justify="right")
    table.add_column("positive", justify="left")
    table.add_column("neg %", justify="right")
    table.add_column("negative", justify="left")
    pos = d.positive_counts / max(1, d.positive_counts.sum())
    neg = d.negative_counts / max(1, d.negative_counts.sum())
    top = max(float(pos.max()), float(neg.max())) or 1.0
    for lo, hi, p, n in zip(d.edges[:-1], d.edges[1:], pos, neg):
        marker = "m▶" if lo <= d.margin.margin < hi else "  "
        table.add_row(f"{marker} {lo:.3f}–{hi:.3f}", f"{100 * p:.1f}", _bar(p, top, "green"),
                      f"{100 * n:.1f}", _bar(n, top, "red"))
    return table


def _bar(share: float, top: float, colour: str) -> Text:
    width = int(round(BAR_WIDTH * share / top))
    return Text("█" * width if width else ("▏" if share > 0 else ""), style=colour)


PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path: str) -> str:
    """``png``, ``svg`` or ``pdf`` from the extension of ``--plot FILE``; others are refused."""
    import os.path

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in PLOT_FORMATS:
        raise OptionError(f"--plot {path}: unknown picture format {suffix or '(no extension)'}; "
                          "use .png, .svg or .pdf")
    return PLOT_FORMATS[suffix]


def require_matplotlib() -> None:
    """An :class:`OptionError` with the install line when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise OptionError("--plot needs matplotlib: pip install 'embedkit[plot]'")


def write_plot(result: Inspection, path: str) -> None:
    """Histograms of positive/negative distances and the margin curve, atomically; PNG, SVG or
    PDF by the extension of ``path``."""
    require_matplotlib()
    if result.distances is None:
        raise OptionError("--plot draws pair distances, and there are none (labels with a positive and a "
                          "negative pair are needed)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = result.distances
    m = d.margin
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), constrained_layout=True)
    widths = np.diff(d.edges)
    top.bar(d.edges[:-1], d.positive_counts / d.positive_counts.sum(), widths, align="edge", alpha=0.6,
            color="tab:green", label=f"positive pairs ({d.positive.count:,})")
    top.bar(d.edges[:-1], d.negative_counts / d.negative_counts.sum(), widths, align="edge", alpha=0.6,
            color="tab:red", label=f"negative pairs ({d.negative.count:,})")
    if not np.isnan(m.margin):
        top.axvline(m.margin, color="black", linestyle="--", label=f"suggested margin {m.margin:.3g}")
    top.set_xlabel("Euclidean distance D")
    top.set_ylabel("share of pairs of its kind")
    top.set_title(f"{result.source}: pair distances ({d.method}), overlap {d.overlap:.3f}")
    top.legend()
    curve = m.curve
    bottom.plot(curve["margin"], curve["negatives_inside"], color="tab:red", label="negatives inside (D < m)")
    bottom.plot(curve["margin"], curve["positives_beyond"], color="tab:green", label="positives beyond (D > m)")
    bottom.plot(curve["margin"], curve["negatives_inside"] + curve["positives_beyond"], color="black",
                label="sum (minimised)")
    if not np.isnan(m.margin):
        bottom.axvline(m.margin, color="black", linestyle="--")
    bottom.set_xlabel("margin m")
    bottom.set_ylabel("fraction of pairs")
    bottom.legend()
    with atomic_output(path) as temporary:
        fig.savefig(temporary, format=plot_format(path), dpi=110)
    plt.close(fig)
