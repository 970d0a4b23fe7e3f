"""The mining dispatcher: validate the spec, then mine exactly, approximately or in batches.

Exact search scans every anchor against every row in BLAS tiles (see
:mod:`embedkit.mining.exact`); ``hard`` and ``batch-hard`` may use an approximate FAISS
index instead (``index="hnsw"|"ivf"``, or ``"auto"`` beyond ``spec.auto_exact_max_rows``
rows, see :mod:`embedkit.mining.approximate`); ``batch_size`` mines inside random batches
(:mod:`embedkit.mining.batches`). The strategies' definitions are in :mod:`embedkit.mining.spec`.
"""

from __future__ import annotations

import time

import numpy as np

from embedkit.dataset import Dataset
from embedkit.errors import InputError
from embedkit.execution import Execution
from embedkit.mining.approximate import mine_approximate
from embedkit.mining.batches import mine_batches
from embedkit.mining.exact import mine_exact, too_many
from embedkit.mining.keys import prepare
from embedkit.mining.positives import choose_positives
from embedkit.mining.result import MineResult, distance_summary, finish_items
from embedkit.mining.spec import (
    APPROXIMATE,
    DEFINITIONS,
    FALLBACKS,
    POSITIVE_CHOICES,
    SELECTS,
    STRATEGIES,
    Fallback,
    MineSpec,
    PositiveChoice,
    Select,
    Strategy,
    reported_params,
    strategy_definition,
)
from embedkit.pairs import class_sizes

__all__ = [
    "DEFINITIONS", "FALLBACKS", "POSITIVE_CHOICES", "SELECTS", "STRATEGIES", "Fallback", "MineResult", "MineSpec",
    "PositiveChoice", "Select", "Strategy", "choose_index", "choose_positives", "mine", "mine_dataset",
]


def mine_dataset(dataset: Dataset, spec: MineSpec, *, execution: Execution = Execution()) -> MineResult:
    """:func:`mine` on a loaded :class:`~embedkit.dataset.Dataset` (labels required)."""
    labels = dataset.require_labels(f"mining ({spec.strategy})")
    return mine(dataset.embeddings, labels, spec, execution=execution)


def mine(
    embeddings: np.ndarray,
    labels: np.ndarray,
    spec: MineSpec,
    *,
    execution: Execution = Execution(),
) -> MineResult:
    """Mine ``spec.strategy`` items from ``embeddings`` (n, dim) with label codes (n,);
    ``execution`` says where the blocked scans run, within which memory budget.

    >>> x = np.array([[0.0], [0.1], [0.5], [3.0]])
    >>> r = mine(x, np.array([0, 0, 1, 1]), MineSpec("hard", positives="nearest"))
    >>> r.items["negative"].tolist()
    [2, 2, 1, 1]
    """
    started = time.perf_counter()
    spec = spec.validated()
    codes = np.asarray(labels)
    n = int(embeddings.shape[0])
    if codes.ndim != 1 or len(codes) != n:
        raise InputError(f"labels has {len(codes)} rows but embeddings has {n}")
    codes = np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64)
    sizes = class_sizes(codes)
    if len(sizes) < 2:
        rows = "the only row has" if n == 1 else f"all {n} rows have"
        raise InputError(f"{rows} one label; mining needs at least two labels (negatives)")
    if spec.triplets and sizes.max() < 2:
        raise InputError(f"no label has two or more rows ({len(sizes)} labels, {n} rows); "
                         f"{spec.strategy} needs positives (another row with the anchor's label)")
    index, reason = choose_index(spec, n)
    prep = prepare(embeddings, spec.metric)
    description = "exact blocked scan (BLAS tiles + numba kernels)"
    batches = None
    if spec.batch_size is not None:
        part, batches = mine_batches(prep, codes, spec, execution)
    elif index in APPROXIMATE:
        part, description = mine_approximate(prep, embeddings, codes, spec, index, execution)
    else:
        part = mine_exact(prep, codes, spec, np.random.default_rng(spec.seed), execution)
    if len(part.a) > spec.max_items:  # every strategy, before the output columns are built
        raise too_many(spec, len(part.a))
    items = finish_items(embeddings, codes, spec, part)
    recall = part.recall_hits / part.recall_anchors if part.recall_anchors else None
    return MineResult(
        strategy=spec.strategy, definition=strategy_definition(spec), items=items, rows=n,
        anchors=part.anchors, anchors_with_none=part.anchors_with_none,
        anchors_without_positive=part.anchors_without_positive, slots=part.slots,
        slots_with_none=part.slots_with_none, fallback_items=part.fallback_items,
        index=index, index_description=description, index_reason=reason,
        recall=recall, recall_anchors=part.recall_anchors,
        seconds=time.perf_counter() - started, metric=spec.metric, params=reported_params(spec),
        distances=distance_summary(items), batches=batches,
    )


def choose_index(spec: MineSpec, n: int) -> tuple[str, str]:
    """``(index kind, why)``: exact, or the approximate index ``auto`` picks beyond its row limit."""
    if spec.batch_size is not None:
        return "exact", f"--batch-size {spec.batch_size}: exact within each batch"
    if spec.index != "auto":
        return spec.index, f"--index {spec.index}"
    if spec.strategy not in ("hard", "batch-hard"):
        return "exact", f"auto: {spec.strategy} needs the exact per-anchor band"
    if n <= spec.auto_exact_max_rows:
        return "exact", f"auto: {n:,} rows <= {spec.auto_exact_max_rows:,}, exact search is fast enough"
    return "ivf", f"auto: {n:,} rows > {spec.auto_exact_max_rows:,}, exact search would grow as n²"
