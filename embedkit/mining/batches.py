"""In-batch mining: exact mining inside random batches of ``batch_size`` rows, as a
training loop would see them; batches are independent tasks merged in batch order."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from embedkit.chunking import blocks
from embedkit.execution import Execution
from embedkit.mining.exact import mine_exact
from embedkit.mining.keys import Prepared
from embedkit.mining.result import MinedPart
from embedkit.mining.spec import MineSpec


@dataclass(frozen=True)
class _BatchJob:
    """What every batch task reads (shared with the workers once)."""

    prep: Prepared
    labels: np.ndarray
    spec: MineSpec
    order: np.ndarray
    budget_mib: float


def mine_batches(prep: Prepared, labels: np.ndarray, spec: MineSpec, execution: Execution) -> tuple[MinedPart, int]:
    """Mine inside random batches of ``batch_size`` rows (a permutation drawn with ``seed``);
    batches are independent tasks on the execution's engine (each single-threaded), merged
    in batch order."""
    n = len(labels)
    size = int(spec.batch_size or n)
    job = _BatchJob(prep, labels, replace(spec, check_recall=0), np.random.default_rng(spec.seed).permutation(n),
                    execution.budget_mib)
    bounds = [(number, start, stop) for number, (start, stop) in enumerate(blocks(n, size))]
    engine = execution.engine
    parts = list(engine.map(_mine_batch, engine.share(job), bounds, weights=[b[2] - b[1] for b in bounds],
                            progress=execution.progress))
    merged = MinedPart(
        np.concatenate([p.a for p in parts]), np.concatenate([p.b for p in parts]),
        np.concatenate([p.c for p in parts if p.c is not None]) if spec.triplets else None,
    )
    for name in ("anchors", "anchors_with_none", "anchors_without_positive", "slots", "slots_with_none",
                 "fallback_items"):
        setattr(merged, name, sum(getattr(p, name) for p in parts))
    return merged, len(bounds)


def _mine_batch(job: _BatchJob, bounds: tuple[int, int, int]) -> MinedPart:
    """One batch, exact, on one thread; row ids mapped back to the whole file."""
    number, start, stop = bounds
    ids = np.sort(job.order[start:stop])
    sub_labels = job.labels[ids]
    sub = Prepared(np.ascontiguousarray(job.prep.x[ids]), job.prep.terms[ids], job.prep.metric, job.prep.centre)
    if len(np.unique(sub_labels)) < 2:
        part = _empty_batch(sub_labels, job.spec)
    else:
        rng = np.random.default_rng([job.spec.seed, number])
        part = mine_exact(sub, sub_labels, job.spec, rng, Execution.local(1, budget_mib=job.budget_mib))
    part.a, part.b = ids[part.a], ids[part.b]
    if part.c is not None:
        part.c = ids[part.c]
    return part


def _empty_batch(labels: np.ndarray, spec: MineSpec) -> MinedPart:
    """A batch of one label: no negatives, so every anchor has none."""
    empty = np.empty(0, np.int64)
    n = len(labels)
    if not spec.triplets:
        return MinedPart(empty, empty, None, anchors=n, anchors_with_none=n)
    anchors = n if n >= 2 else 0
    return MinedPart(empty, empty, empty.copy(), anchors=anchors, anchors_with_none=anchors,
                 anchors_without_positive=n - anchors)
