"""Pair items (``contrastive``, ``bce``): the rows of a pairs table ``i, j, y``, else every
pair ``i < j`` of the labels (``y = 1`` when the labels match).

Up to ``run.enumerate_pairs_below`` label pairs are enumerated in blocks; beyond, the
tiled kernel of :mod:`embedkit.losses.allpairs` scans the upper triangle without listing them.
"""

from __future__ import annotations

import numpy as np

from embedkit.chunking import blocks, rows_per_block
from embedkit.distances import paired_cosines, paired_distances
from embedkit.errors import InputError
from embedkit.losses.allpairs import scan_label_pairs
from embedkit.losses.bce import binary_cross_entropy_loss
from embedkit.losses.contrastive import contrastive_loss
from embedkit.losses.pair_kernel import FORM_BCE, FORM_HALVED, FORM_LINEAR, FORM_SQUARED
from embedkit.losses.result import Aggregate, LossResult
from embedkit.losses.run import LossRun
from embedkit.pairs import (
    check_binary,
    check_indices,
    count_label_pairs,
    first_upper_pairs,
    upper_pairs,
)

_FORM_CODES = {"squared": FORM_SQUARED, "halved": FORM_HALVED, "linear": FORM_LINEAR}


def pair_block(run: LossRun, i: np.ndarray, j: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The items of pairs ``(i[k], j[k])`` with similarity ``y``, and the loss at each sweep margin."""
    spec = run.spec
    if spec.kind == "bce":
        cos = paired_cosines(run.x, i, j, budget_mib=run.execution.budget_mib)
        loss = binary_cross_entropy_loss(cos, y, scale=spec.scale, bias=spec.bias)
        return {"i": i, "j": j, "y": y.astype(np.int64), "cos": cos, "loss": loss}, []
    d = paired_distances(run.x, i, j, budget_mib=run.execution.budget_mib)
    loss = contrastive_loss(d, y, margin=spec.margin, form=spec.form)
    sweep = [contrastive_loss(d, y, margin=m, form=spec.form) for m in spec.margins]
    return {"i": i, "j": j, "y": y.astype(np.int64), "d": d, "loss": loss}, sweep


def pair_columns(run: LossRun) -> tuple[str, ...]:
    """The per-item columns of a pair loss."""
    return ("i", "j", "y", "cos" if run.spec.kind == "bce" else "d", "loss")


def explicit_pairs(run: LossRun, table: dict[str, np.ndarray], source: str) -> LossResult:
    """The loss over the rows of a pairs table (columns ``i, j, y``)."""
    for name in ("i", "j", "y"):
        if name not in table:
            raise InputError(f"{source}: missing column '{name}' (a pairs table has columns i, j, y)")
    check_indices(table, ("i", "j"), run.dataset.rows, source)
    y = check_binary(table["y"], "y", source)
    run.check_item_count(len(y), source)
    acc = run.accumulator()
    step = rows_per_block(run.x.shape[1] * 8 * 4, run.execution.budget_mib)
    for start, stop in blocks(len(y), step):
        block, sweep = pair_block(run, table["i"][start:stop], table["j"][start:stop], y[start:stop])
        acc.add(block, sweep)
    similar = int(y.sum())
    return run.finish(acc.finish(), pair_columns(run), f"{source} ({len(y)} pairs)",
                       similar_pairs=similar, dissimilar_pairs=len(y) - similar)


def label_pairs(run: LossRun) -> LossResult:
    """The loss over every pair ``i < j`` of the labels: enumerated, or scanned in tiles."""
    labels = run.labels(f"{run.spec.kind} loss over all pairs")
    n = len(labels)
    similar, dissimilar = count_label_pairs(labels)
    count = similar + dissimilar
    source = f"all {count:,} label pairs i < j"
    run.check_item_count(count, source)
    if run.keep or count <= run.enumerate_pairs_below:
        acc = run.accumulator()
        for i, j in upper_pairs(n, max(1, rows_per_block(run.x.shape[1] * 8 * 4, run.execution.budget_mib))):
            block, sweep = pair_block(run, i, j, labels[i] == labels[j])
            acc.add(block, sweep)
        return run.finish(acc.finish(), pair_columns(run), source,
                           similar_pairs=similar, dissimilar_pairs=dissimilar, method="enumerated")
    spec = run.spec
    form = FORM_BCE if spec.kind == "bce" else _FORM_CODES[spec.form]
    margins = (spec.margin, *spec.margins)
    scan = scan_label_pairs(
        run.x, labels, form=form, margins=margins, scale=spec.scale, bias=spec.bias,
        top=run.top, execution=run.execution,
    )
    head_i, head_j = first_upper_pairs(n, run.trace)
    head, _ = pair_block(run, head_i, head_j, labels[head_i] == labels[head_j])
    value_column = "cos" if spec.kind == "bce" else "d"
    top = {"i": scan.top["i"], "j": scan.top["j"], "y": scan.top["y"], value_column: scan.top["value"], "loss": scan.top["loss"]}
    if spec.kind == "contrastive" and len(top["i"]):
        # Report the exact distance of the few top pairs, not the tile's expansion.
        exact, _ = pair_block(run, top["i"], top["j"], top["y"].astype(bool))
        top["d"] = exact["d"]
    aggregate = Aggregate(
        total=float(scan.totals[0]), count=scan.count, active=int(scan.actives[0]),
        head=head, top=top, margins=spec.margins,
        sweep_totals=tuple(float(t) for t in scan.totals[1:]),
        sweep_active=tuple(int(a) for a in scan.actives[1:]),
    )
    return run.finish(aggregate, pair_columns(run), source,
                       similar_pairs=similar, dissimilar_pairs=dissimilar, method="tiled kernel")
