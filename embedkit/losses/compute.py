"""``compute_loss``: one entry point for every loss; it picks the item source and the reduction.

Item sources, by family: :mod:`~embedkit.losses.pair_items` (``contrastive``, ``bce``),
:mod:`~embedkit.losses.triplet_items` (``triplet``), :mod:`~embedkit.losses.anchor_items`
(``npair``, ``infonce``, ``supcon``). Nothing n×n is ever held: all work runs in blocks
under the execution's memory budget.
"""

from __future__ import annotations

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.dataset import Dataset
from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.losses.anchor_items import npair, softmax_anchors
from embedkit.losses.pair_items import explicit_pairs, label_pairs
from embedkit.losses.result import LossResult
from embedkit.losses.run import (
    ENUMERATE_PAIRS_BELOW,
    ENUMERATE_TRIPLETS_BELOW,
    MAX_OUTPUT_ITEMS,
    LossRun,
)
from embedkit.losses.spec import LOSS_KINDS, LossKind, LossSpec
from embedkit.losses.triplet_items import explicit_triplets, label_triplets

__all__ = ["LOSS_KINDS", "LossKind", "LossSpec", "compute_loss"]


def compute_loss(
    dataset: Dataset,
    spec: LossSpec,
    *,
    pairs: dict[str, np.ndarray] | None = None,
    triplets: dict[str, np.ndarray] | None = None,
    pairs_source: str = "pairs",
    triplets_source: str = "triplets",
    trace: int = 5,
    top: int = 5,
    keep_items: bool = False,
    execution: Execution = Execution(),
    enumerate_pairs_below: int = ENUMERATE_PAIRS_BELOW,
    enumerate_triplets_below: int = ENUMERATE_TRIPLETS_BELOW,
    max_output_items: int = MAX_OUTPUT_ITEMS,
) -> LossResult:
    """Compute ``spec``'s loss over ``dataset`` (see the module docstring for item sources).

    ``trace`` first items and ``top`` largest items are kept for display; every item is
    kept when ``keep_items`` or the reduction is ``none`` (at most ``max_output_items``).
    ``execution`` says where the tiled all-pairs scan runs (default: local threads on every
    core), the memory budget of every block and where progress goes.
    Label pairs / triplets up to ``enumerate_*_below`` are enumerated, beyond that scanned
    or totalled without listing them.

    >>> data = Dataset(np.array([[0.0], [0.5], [3.0]]), "example", labels=np.array([0, 0, 1]))
    >>> round(compute_loss(data, LossSpec("contrastive", reduction="sum")).loss, 4)
    0.25
    """
    spec = spec.validated()
    if pairs is not None and triplets is not None:
        raise OptionError("give --pairs or --triplets, not both")
    if triplets is not None and spec.kind != "triplet":
        raise OptionError(f"--triplets applies to the triplet loss, not {spec.kind}")
    if pairs is not None and spec.kind not in ("contrastive", "bce", "npair"):
        raise OptionError(f"--pairs applies to contrastive, bce and npair losses, not {spec.kind}")
    x = l2_normalized(dataset.embeddings) if spec.normalize else dataset.embeddings
    run = LossRun(dataset, x, spec, trace=trace, top=top, keep=keep_items or spec.reduction == "none",
                  execution=execution, enumerate_pairs_below=enumerate_pairs_below, enumerate_triplets_below=enumerate_triplets_below,
                  max_output_items=max_output_items)
    if spec.kind in ("contrastive", "bce"):
        return label_pairs(run) if pairs is None else explicit_pairs(run, pairs, pairs_source)
    if spec.kind == "triplet":
        return label_triplets(run) if triplets is None else explicit_triplets(run, triplets, triplets_source)
    if spec.kind == "npair":
        return npair(run, pairs, pairs_source)
    return softmax_anchors(run)
