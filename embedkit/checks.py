"""CI gates on exported embeddings: requirements over figures, baseline drops, JUnit XML.

A requirement is ``NAME OP VALUE``: ``NAME`` one of :func:`figure_names` (what
``eval``, ``inspect`` and ``loss`` report), ``OP`` one of ``>=``, ``<=``, ``>``, ``<``,
``==`` and ``VALUE`` a finite number; spaces around the parts are allowed
(``precision_at_1 >= 0.9``). A *maximum drop* ``NAME=VALUE`` (with a baseline export of
the same rows) holds when the figure got worse by at most ``VALUE``: for a figure where
higher is better, ``current >= baseline - VALUE``; where lower is better (losses, bad
rows, overlap), ``current <= baseline + VALUE``.

With relevance judgements (:class:`RetrievalCheck`: queries and qrels), the IR figures
``ndcg_at_K``, ``mrr_at_K``, ``map_at_K``, ``recall_at_K`` and ``precision_at_K`` of
:mod:`embedkit.ireval` are measured (``recall_at_K`` and ``precision_at_1`` then mean the IR
figures); a baseline then needs its own queries (the same queries embedded by the old model).

Only the figures the requirements name are computed: the k-NN search only for
retrieval metrics, the pair distances only for distance figures, one loss per kind.
Figures that cannot be measured (eval/loss figures on embeddings with NaN/Inf rows,
distance figures without a positive or a negative pair) have no value and fail.
"""

from __future__ import annotations

import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from embedkit.choices import DEFAULT_EXACT_PAIRS, DEFAULT_SAMPLE, DEFAULT_SEED, METRIC_NAMES
from embedkit.dataset import Dataset, LoadedEmbeddings
from embedkit.distances import Metric
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.inspection import FIGURE_PARTS, inspect_embeddings
from embedkit.ireval import IR_FIGURE
from embedkit.losses.spec import LOSS_KINDS, LossSpec
from embedkit.output import atomic_output
from embedkit.qrels import Qrels

OPERATORS: dict[str, str] = {">=": "ge", "<=": "le", ">": "gt", "<": "lt", "==": "eq"}
GRAMMAR = "NAME OP VALUE with OP one of >=, <=, >, <, == (e.g. precision_at_1>=0.9)"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*([^\s<>=]+)\s*$")
_RECALL = re.compile(r"^recall_at_([1-9][0-9]{0,5})$")
LOSS_FIGURES: dict[str, str] = {f"{kind}_loss": kind for kind in LOSS_KINDS}
HIGHER_IS_BETTER = frozenset(METRIC_NAMES)
LOWER_IS_BETTER = frozenset({
    *LOSS_FIGURES, "nan_rows", "inf_rows", "nonfinite_rows", "duplicate_rows", "zero_rows",
    "singleton_classes", "overlap", "ranking_error", "margin_negatives_inside", "margin_positives_beyond",
})


@dataclass(frozen=True)
class Requirement:
    """``name op value``, and the text it was parsed from."""

    name: str
    op: str
    value: float
    text: str

    def holds(self, measured: float) -> bool:
        return compare(measured, self.op, self.value)


@dataclass(frozen=True)
class MaxDrop:
    name: str
    drop: float
    text: str


@dataclass(frozen=True)
class RetrievalCheck:
    """What IR figures need besides the corpus: the queries (and the baseline's), the qrels."""

    queries: Dataset
    qrels: Qrels
    baseline_queries: Dataset | None = None
    metric: str = "cosine"
    ignore_missing: bool = False


@dataclass(frozen=True)
class CheckSettings:
    """How figures are measured: the eval metric, the loss hyper-parameters, the inspect sampling."""

    metric: Metric = "euclidean"
    retrieval: RetrievalCheck | None = None
    loss: LossSpec = field(default_factory=lambda: LossSpec(kind="contrastive"))
    exact_pairs: int = DEFAULT_EXACT_PAIRS
    sample: int = DEFAULT_SAMPLE
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class Outcome:
    """One checked line: a requirement or a maximum drop."""

    text: str
    name: str
    source: str
    value: float | None
    passed: bool
    expected: str
    baseline: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CheckReport:
    outcomes: tuple[Outcome, ...]
    source: str
    baseline_source: str | None
    seconds: float
    #: Files read for the embeddings (1 for a single file or stdin).
    shards: int = 1

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)


def compare(measured: float, op: str, value: float) -> bool:
    """``measured OP value``; a NaN never holds."""
    if op not in OPERATORS:
        raise OptionError(f"unknown operator {op!r}; expected {GRAMMAR}")
    return bool({">=": measured >= value, "<=": measured <= value, ">": measured > value,
                 "<": measured < value, "==": measured == value}[op])


def figure_names() -> tuple[str, ...]:
    """Every figure ``check`` understands (``recall_at_K`` for any K >= 1)."""
    return (*METRIC_NAMES, "recall_at_K", *LOSS_FIGURES, *FIGURE_PARTS)


#: The IR figures ``check`` understands when judgements are given (any K >= 1).
QRELS_FIGURE_NAMES: tuple[str, ...] = ("ndcg_at_K", "mrr_at_K", "map_at_K", "recall_at_K", "precision_at_K")


def figure_source(name: str, *, qrels: bool = False) -> str:
    """``eval``, ``qrels``, ``loss`` or ``inspect``; an :class:`OptionError` for an unknown name.

    With ``qrels`` (judgements given), ``{ndcg,mrr,map,recall,precision}_at_K`` are IR figures."""
    if qrels and IR_FIGURE.match(name):
        return "qrels"
    if name in METRIC_NAMES or _RECALL.match(name):
        return "eval"
    if IR_FIGURE.match(name):
        raise OptionError(f"{name} is a retrieval figure: it needs --queries and --qrels")
    if name in LOSS_FIGURES:
        return "loss"
    if name in FIGURE_PARTS:
        return "inspect"
    import difflib

    close = difflib.get_close_matches(name, [*METRIC_NAMES, "recall_at_10", *LOSS_FIGURES, *FIGURE_PARTS], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise OptionError(
        f"unknown figure {name!r}{hint} (known: {', '.join(figure_names())}; with --qrels: "
        f"{', '.join(QRELS_FIGURE_NAMES)}; see `embedkit check --help`)"
    )


def parse_requirement(text: str, *, qrels: bool = False) -> Requirement:
    """Parse ``NAME OP VALUE``; an :class:`OptionError` naming the text otherwise.

    >>> parse_requirement("precision_at_1 >= 0.9")
    Requirement(name='precision_at_1', op='>=', value=0.9, text='precision_at_1>=0.9')
    """
    match = _REQUIREMENT.match(text)
    if match is None:
        raise OptionError(f"--require {text!r}: malformed requirement; expected {GRAMMAR}")
    name, op, raw = match.groups()
    try:
        figure_source(name, qrels=qrels)
    except OptionError as exc:
        raise OptionError(f"--require {text!r}: {exc}") from None
    try:
        value = float(raw)
    except ValueError:
        raise OptionError(f"--require {text!r}: {raw!r} is not a number; expected {GRAMMAR}") from None
    if not math.isfinite(value):
        raise OptionError(f"--require {text!r}: the value must be a finite number; expected {GRAMMAR}")
    return Requirement(name=name, op=op, value=value, text=f"{name}{op}{raw}")


def parse_max_drop(text: str, *, qrels: bool = False) -> MaxDrop:
    """Parse ``NAME=VALUE`` (VALUE >= 0) for a figure with a better direction.

    >>> parse_max_drop("precision_at_1=0.01")
    MaxDrop(name='precision_at_1', drop=0.01, text='precision_at_1=0.01')
    """
    name, sep, raw = (part.strip() for part in text.partition("="))
    expected = "NAME=VALUE with VALUE >= 0 (e.g. precision_at_1=0.01)"
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise OptionError(f"--max-drop {text!r}: malformed; expected {expected}")
    try:
        figure_source(name, qrels=qrels)
    except OptionError as exc:
        raise OptionError(f"--max-drop {text!r}: {exc}") from None
    if not (_RECALL.match(name) or IR_FIGURE.match(name) or name in HIGHER_IS_BETTER or name in LOWER_IS_BETTER):
        raise OptionError(f"--max-drop {text!r}: {name} has no better direction; use --require for it")
    try:
        drop = float(raw)
    except ValueError:
        raise OptionError(f"--max-drop {text!r}: {raw!r} is not a number; expected {expected}") from None
    if not math.isfinite(drop) or drop < 0:
        raise OptionError(f"--max-drop {text!r}: the drop must be a finite number >= 0; expected {expected}")
    return MaxDrop(name=name, drop=drop, text=f"{name}={raw}")


def higher_is_better(name: str) -> bool:
    return name in HIGHER_IS_BETTER or bool(_RECALL.match(name)) or bool(IR_FIGURE.match(name))


def measure_figures(
    loaded: LoadedEmbeddings, names: set[str], settings: CheckSettings, *, baseline: bool = False,
    execution: Execution = Execution(),
) -> tuple[dict[str, float | None], dict[str, str]]:
    """The named figures (only what they need is computed); ``reasons`` for those without a value.

    ``baseline``: ``loaded`` is the baseline export (IR figures use the baseline queries).
    ``execution``: where the eval and loss scans run, within which memory budget."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    dataset = loaded.dataset
    by_source: dict[str, set[str]] = {}
    retrieval = settings.retrieval
    for name in names:
        by_source.setdefault(figure_source(name, qrels=retrieval is not None), set()).add(name)

    inspect_names = by_source.get("inspect", set())
    if inspect_names:
        parts = tuple({FIGURE_PARTS[n] for n in inspect_names} - {"base"})
        if {"labels", "distances"} & set(parts):
            dataset.require_labels(", ".join(sorted(inspect_names)))
        found = inspect_embeddings(loaded, parts=parts, normalize=settings.loss.normalize,
                                   exact_pairs=settings.exact_pairs, sample=settings.sample, seed=settings.seed,
                                   budget_mib=execution.budget_mib)
        figures = found.figures
        for name in inspect_names:
            values[name] = figures.get(name)
            if values[name] is None:
                reasons[name] = "undefined: pair distances need a positive and a negative pair"
            elif isinstance(values[name], float) and math.isnan(values[name]):
                reasons[name] = "undefined: every pair is at the same distance, no margin separates the kinds"

    heavy = by_source.get("eval", set()) | by_source.get("loss", set()) | by_source.get("qrels", set())
    if heavy and loaded.nonfinite_rows:
        for name in heavy:
            values[name] = None
            reasons[name] = f"undefined: {loaded.nonfinite_rows:,} rows have NaN or Inf values"
        return values, reasons

    eval_names = by_source.get("eval", set())
    if eval_names:
        ks = tuple(sorted(int(m.group(1)) for m in map(_RECALL.match, eval_names) if m)) or (1,)
        from embedkit.metrics import (
            evaluate_retrieval,  # faiss: imported only when an eval figure is asked
        )

        result = evaluate_retrieval(dataset, ks=ks, metric=settings.metric, execution=execution)
        for name in eval_names:
            values[name] = result.figures[name]

    qrels_names = by_source.get("qrels", set())
    if qrels_names and retrieval is not None:
        from embedkit.ireval import evaluate_qrels

        queries = retrieval.baseline_queries if baseline else retrieval.queries
        if queries is None:
            raise OptionError("--baseline with IR figures needs --baseline-queries (the queries embedded by the "
                              "baseline model)")
        ks = tuple(sorted({int(m.group(2)) for m in map(IR_FIGURE.match, qrels_names) if m}))
        found = evaluate_qrels(dataset, queries, retrieval.qrels, ks=ks, metric=retrieval.metric,  # type: ignore[arg-type]
                               ignore_missing=retrieval.ignore_missing, execution=execution)
        for name in qrels_names:
            values[name] = found.figures[name]

    if by_source.get("loss"):
        from embedkit.losses.compute import (
            compute_loss,  # numba: imported only when a loss figure is asked
        )
    for name in by_source.get("loss", set()):
        spec = replace(settings.loss, kind=LOSS_FIGURES[name], reduction="mean", margins=())  # type: ignore[arg-type]
        if LOSS_FIGURES[name] not in ("infonce", "supcon"):
            spec = replace(spec, temperature=None)
        loss = compute_loss(dataset, spec, trace=0, top=0, execution=execution).loss
        values[name] = float(loss) if loss is not None else None
    return values, reasons


def run_check(
    loaded: LoadedEmbeddings,
    requirements: tuple[Requirement, ...],
    *,
    baseline: LoadedEmbeddings | None = None,
    max_drops: tuple[MaxDrop, ...] = (),
    settings: CheckSettings = CheckSettings(),
    execution: Execution = Execution(),
) -> CheckReport:
    """Measure what ``requirements`` and ``max_drops`` need and judge each one (the scans run
    as ``execution`` says)."""
    started = time.perf_counter()
    if not requirements and not max_drops:
        raise OptionError("nothing to check: give --require NAME OP VALUE (and/or --baseline with --max-drop)")
    if max_drops and baseline is None:
        raise OptionError("--max-drop compares with a previous export: give --baseline OLD")
    if baseline is not None and not max_drops:
        raise OptionError("--baseline needs at least one --max-drop NAME=VALUE (e.g. precision_at_1=0.01)")
    qrels = settings.retrieval is not None
    current_names = {r.name for r in requirements} | {d.name for d in max_drops}
    values, reasons = measure_figures(loaded, current_names, settings, execution=execution)
    outcomes = [
        _judge(r.text, r.name, values.get(r.name), f"{r.op} {r.value:g}",
               partial(compare, op=r.op, value=r.value), reasons.get(r.name), qrels=qrels)
        for r in requirements
    ]
    if baseline is not None:
        baseline = _aligned_baseline(baseline, loaded)
        old_values, old_reasons = measure_figures(baseline, {d.name for d in max_drops}, settings, baseline=True,
                                                  execution=execution)
        for drop in max_drops:
            old = old_values.get(drop.name)
            reason = reasons.get(drop.name) or (f"baseline {old_reasons[drop.name]}" if drop.name in old_reasons else None)
            if old is None:
                outcomes.append(Outcome(drop.text, drop.name, figure_source(drop.name, qrels=qrels), values.get(drop.name),
                                        False, f"drop <= {drop.drop:g}", None, reason or "baseline undefined"))
                continue
            if higher_is_better(drop.name):
                bound, op, words = old - drop.drop, ">=", f"baseline {old:.6g} − {drop.drop:g}"
            else:
                bound, op, words = old + drop.drop, "<=", f"baseline {old:.6g} + {drop.drop:g}"
            outcome = _judge(f"max-drop {drop.text}", drop.name, values.get(drop.name), f"{op} {bound:.6g} ({words})",
                             partial(compare, op=op, value=bound), reason, qrels=qrels)
            outcomes.append(replace(outcome, baseline=old))
    return CheckReport(outcomes=tuple(outcomes), source=loaded.dataset.source,
                       baseline_source=baseline.dataset.source if baseline is not None else None,
                       seconds=time.perf_counter() - started, shards=max(1, len(loaded.dataset.shards)))


def _judge(text: str, name: str, value: float | None, expected: str,
           holds: Callable[[float], bool], reason: str | None, *, qrels: bool = False) -> Outcome:
    source = figure_source(name, qrels=qrels)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Outcome(text, name, source, None, False, expected, reason=reason or "undefined")
    passed = bool(holds(value))
    # Counts stay integers (``nan_rows = 1``, not ``1.0``).
    measured = int(value) if isinstance(value, (int, np.integer)) else float(value)
    return Outcome(text, name, source, measured, passed, expected)


def _aligned_baseline(baseline: LoadedEmbeddings, current: LoadedEmbeddings) -> LoadedEmbeddings:
    """The baseline must hold the same rows; without labels of its own it takes the current ones."""
    old, new = baseline.dataset, current.dataset
    if old.rows != new.rows:
        raise InputError(
            f"{old.source}: baseline has {old.rows:,} rows but {new.source} has {new.rows:,}; "
            "a baseline must be an export of the same rows"
        )
    if old.labels is None and new.labels is not None:
        return replace(baseline, dataset=replace(old, labels=new.labels, label_names=new.label_names,
                                                 label_source=new.label_source))
    if old.labels is not None and new.labels is not None and old.label_names is not None \
            and new.label_names is not None:
        same = len(old.label_names) == len(new.label_names) and np.array_equal(
            np.asarray(old.label_names).astype(str)[old.labels], np.asarray(new.label_names).astype(str)[new.labels])
        if not same:
            raise InputError(f"{old.source}: baseline labels differ from the labels of {new.source}; "
                             "a baseline must be an export of the same rows")
    return baseline


def junit_xml(report: CheckReport) -> ET.Element:
    """The report as a JUnit ``<testsuites>`` element: one test case per requirement."""
    failures = len(report.failed)
    suites = ET.Element("testsuites", name="embedkit check", tests=str(len(report.outcomes)),
                        failures=str(failures), errors="0", time=f"{report.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name="embedkit check", tests=str(len(report.outcomes)),
                          failures=str(failures), errors="0", skipped="0", time=f"{report.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="embeddings", value=report.source)
    if report.baseline_source is not None:
        ET.SubElement(props, "property", name="baseline", value=report.baseline_source)
    for outcome in report.outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"embedkit.check.{outcome.source}",
                             name=outcome.text, time="0")
        measured = "undefined" if outcome.value is None else f"{outcome.value:.6g}"
        if not outcome.passed:
            message = f"{outcome.name} = {measured}, required {outcome.expected}"
            if outcome.reason:
                message += f" ({outcome.reason})"
            ET.SubElement(case, "failure", message=message, type="RequirementFailed").text = message
        out = ET.SubElement(case, "system-out")
        out.text = f"{outcome.name} = {measured}; required {outcome.expected}"
    return suites


def write_junit(report: CheckReport, path: str) -> None:
    """Write :func:`junit_xml` to ``path`` atomically (temporary file, then rename)."""
    tree = ET.ElementTree(junit_xml(report))
    ET.indent(tree)
    with atomic_output(path) as temporary:
        tree.write(temporary, encoding="utf-8", xml_declaration=True)


def parse_requirements(texts: tuple[str, ...] | list[str], *, qrels: bool = False) -> tuple[Requirement, ...]:
    """Every ``--require`` text parsed (the first malformed one raises)."""
    return tuple(parse_requirement(text, qrels=qrels) for text in texts)


def parse_max_drops(texts: tuple[str, ...] | list[str], *, qrels: bool = False) -> tuple[MaxDrop, ...]:
    """Every ``--max-drop`` text parsed (the first malformed one raises)."""
    return tuple(parse_max_drop(text, qrels=qrels) for text in texts)
