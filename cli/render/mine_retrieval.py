"""Report and JSON of ``embedkit mine`` in retrieval mode."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from embedkit.mining.retrieval import STATS
from embedkit.mining.retrieval_job import RetrievalRun

from . import number, percent, print_json, stderr_console, stdout_console, to_jsonable

FILTER_NAMES = {"absolute_margin": "--absolute-margin", "relative_margin": "--relative-margin",
                "max_score": "--max-score", "min_score": "--min-score",
                "max_positive_similarity": "--max-positive-similarity"}


def payload(run: RetrievalRun) -> dict[str, Any]:
    """The ``--json`` contract of retrieval mining."""
    r = run.result
    spec = r.spec
    return to_jsonable({
        "mode": "retrieval",
        "queries_mined": r.candidates.queries,
        "positives": int(len(r.candidates.pos_rows)),
        "negatives": r.negatives,
        "triplets": r.triplets,
        "negatives_per_query": spec.negatives,
        "short_queries": r.short_queries,
        "queries_without_negatives": r.queries_without_negatives,
        "removed": r.removed,
        "candidates_examined": r.selection.examined,
        "scores": r.stats,
        "search": r.search,
        "certainty": r.certainty,
        "sweep": r.sweep,
        "qrels": r.qrels,
        "params": {k: v for k, v in vars(spec).items()},
        "inputs": run.inputs,
        "output": {"path": run.output, "rows": run.output_rows, "left_out": run.left_out,
                   "provenance": run.provenance_file, "candidates": run.candidates_file},
        "seconds": r.seconds,
    })


def report(run: RetrievalRun, *, as_json: bool) -> None:
    """JSON on stdout, or the Rich report (on stderr when stdout carries the output)."""
    if as_json:
        print_json(payload(run))
        return
    r = run.result
    console = stderr_console() if run.output == "-" else stdout_console()
    s = r.search
    console.print(f"[bold]mine (retrieval)[/bold]: {r.candidates.queries:,} queries with positives, "
                  f"corpus of {r.candidates.corpus_rows:,} documents, metric {r.candidates.metric}")
    console.print(f"  search      {s['index']}: {s['description']}")
    console.print(f"  candidates  {s['window']}")
    if s.get("recall"):
        rec = s["recall"]
        console.print(f"  recall      {number(rec['value'])} of the exactly selected negatives "
                      f"({rec['queries']:,} sampled queries)")
    q = r.qrels
    if q.get("dropped_missing"):
        console.print(f"  qrels       {q['dropped_missing']:,} rows naming unknown ids dropped (--ignore-missing)")
    if q.get("queries_without_positive"):
        console.print(f"  qrels       {q['queries_without_positive']:,} judged queries have no positive "
                      "(relevance > 0) and are not mined")
    if not r.certainty.get("certain", True):
        console.print(f"  [yellow]warning[/yellow]   the saved lists may be too short for "
                      f"{r.certainty['uncertain_queries']:,} queries: their negatives may differ from a new search")
    table = Table(title="Scores", title_justify="left", box=None, padding=(0, 1))
    table.add_column("")
    for name in ("positive", "negative", "difference"):
        table.add_column(name.capitalize(), justify="right")
    for stat in STATS:
        cells = []
        for name in ("positive", "negative", "difference"):
            value = r.stats[name].get(stat)
            cells.append("" if value is None else (f"{value:,}" if stat == "count" else number(value)))
        table.add_row(stat.capitalize(), *cells)
    console.print()
    console.print(table)
    examined = r.selection.examined
    console.print()
    for name, count in r.removed.items():
        console.print(f"  removed {count:,} candidates ({percent(count, max(examined, 1))}) by "
                      f"{FILTER_NAMES[name]} {getattr(r.spec, name)}")
    console.print(f"  {r.short_queries:,} of {r.candidates.queries:,} queries have fewer than "
                  f"{r.spec.negatives} negatives ({r.queries_without_negatives:,} have none)")
    if r.sweep:
        sweep = Table(title="Relative-margin sweep", title_justify="left", box=None, padding=(0, 1))
        for col in ("relative margin", "negatives", "triplets", "queries short", "removed by margin"):
            sweep.add_column(col, justify="right")
        for row in r.sweep:
            sweep.add_row(number(row["relative_margin"]), f"{row['negatives']:,}", f"{row['triplets']:,}",
                          f"{row['short_queries']:,}", f"{row['removed_by_margin']:,}")
        console.print()
        console.print(sweep)
    if run.output is None and run.preview and not r.sweep:
        table = Table(title="First rows (write them with -o FILE)", title_justify="left", show_edge=False)
        for name in run.preview:
            table.add_column(name, justify="right", no_wrap=True)
        for i in range(len(next(iter(run.preview.values())))):
            table.add_row(*(str(number(v[i]) if not isinstance(v[i], (str, list)) else v[i])
                            for v in run.preview.values()))
        console.print()
        console.print(table)
    console.print()
    where = f" → {run.output if run.output != '-' else 'stdout'}" if run.output else ""
    extra = f" ({run.left_out:,} left out: fewer negatives than the format needs)" if run.left_out else ""
    console.print(f"[bold]{run.output_rows:,} rows[/bold]{where}{extra} in {r.seconds:.2f} s")
