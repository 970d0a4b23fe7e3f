"""Table, JSON and the failure summary of ``embedkit check``."""

from __future__ import annotations

import sys
from typing import Any

from rich.table import Table

from embedkit.checks import CheckReport

from . import labels_text, print_json, stdout_console


def measured(value: float) -> str:
    """A measured figure with enough digits to see why it failed its bound
    (0.02453 against <= 0.0245; 4 decimals would print both as 0.0245)."""
    return f"{value:.8g}"


def report_payload(report: CheckReport) -> dict[str, Any]:
    """The ``--json`` contract: ``passed``, ``failed`` (texts) and one entry per requirement."""
    return {
        "passed": report.passed,
        "failed": [o.text for o in report.failed],
        "embeddings": report.source,
        "shards": report.shards,
        "baseline": report.baseline_source,
        "seconds": report.seconds,
        "requirements": [
            {"requirement": o.text, "figure": o.name, "source": o.source, "value": o.value,
             "expected": o.expected, "baseline": o.baseline, "passed": o.passed, "reason": o.reason}
            for o in report.outcomes
        ],
    }


def report(result: CheckReport, *, as_json: bool, dataset: Any = None) -> None:
    if as_json:
        print_json(report_payload(result))
        return
    console = stdout_console()
    title = f"check {result.source}" + (f" against baseline {result.baseline_source}" if result.baseline_source else "")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for heading, justify in (("requirement", "left"), ("value", "right"), ("required", "left"), ("result", "left")):
        table.add_column(heading, justify=justify)  # type: ignore[arg-type]
    for o in result.outcomes:
        value = measured(o.value) if o.value is not None else "undefined"
        verdict = "pass" if o.passed else "FAIL" + (f" ({o.reason})" if o.reason else "")
        table.add_row(o.text, value, o.expected, verdict)
    console.print(table)
    held = len(result.outcomes) - len(result.failed)
    console.print(f"{held} of {len(result.outcomes)} hold")
    if dataset is not None:
        console.print(f"labels: {labels_text(dataset)}")


def failure_summary(result: CheckReport) -> None:
    """One line on stderr naming the failed requirements and their values."""
    parts = [f"{o.text} ({'undefined' if o.value is None else measured(o.value)})" for o in result.failed]
    print(f"check failed: {len(parts)} of {len(result.outcomes)}: {'; '.join(parts)}", file=sys.stderr, flush=True)
