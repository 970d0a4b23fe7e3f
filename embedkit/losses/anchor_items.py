"""Anchor items of the softmax losses: ``npair`` (one (anchor, positive) pair per class:
the ``y = 1`` rows of a pairs table, else the first two rows of each class) and
``infonce`` / ``supcon`` (every labelled row an anchor against all others, in blocks)."""

from __future__ import annotations

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.chunking import blocks, rows_per_block
from embedkit.errors import InputError
from embedkit.losses.infonce import info_nce_block
from embedkit.losses.npair import n_pair_block
from embedkit.losses.result import LossResult
from embedkit.losses.run import LossRun
from embedkit.losses.supcon import supervised_contrastive_block
from embedkit.pairs import check_binary, check_indices, first_pair_per_class


def npair(run: LossRun, table: dict[str, np.ndarray] | None, source: str) -> LossResult:
    """The N-pair loss over one (anchor, positive) pair per class."""
    labels = run.dataset.labels
    if table is not None:
        for name in ("i", "j"):
            if name not in table:
                raise InputError(f"{source}: missing column '{name}' (npair reads pairs i, j[, y])")
        check_indices(table, ("i", "j"), run.dataset.rows, source)
        keep = check_binary(table["y"], "y", source) if "y" in table else np.ones(len(table["i"]), bool)
        anchors, positives, skipped = table["i"][keep], table["j"][keep], 0
        where = f"{source} (rows with y = 1)"
        if labels is not None:
            other = np.flatnonzero(labels[anchors] != labels[positives])
            if len(other):
                k = int(other[0])
                raise InputError(f"{source}: pair {k} ({int(anchors[k])}, {int(positives[k])}) has two labels; "
                                 "an N-pair positive shares its anchor's label")
            classes = labels[anchors]
            seen, first = np.unique(classes, return_index=True)
            if len(seen) != len(classes):
                dup = int(np.setdiff1d(np.arange(len(classes)), first)[0])
                raise InputError(f"{source}: N-pair needs one pair per class; pair {dup} repeats a class")
    else:
        anchors, positives, skipped = first_pair_per_class(run.labels("npair loss"))
        where = "the first two rows of each class"
    if len(anchors) < 2:
        raise InputError(f"npair loss needs pairs from at least 2 classes; found {len(anchors)} "
                         f"class{'' if len(anchors) == 1 else 'es'} with two or more rows")
    f = np.asarray(run.x[anchors], dtype=np.float64)
    f_pos = np.asarray(run.x[positives], dtype=np.float64)
    acc = run.accumulator()
    step = rows_per_block(len(anchors) * 8 * 3, run.execution.budget_mib)
    for start, stop in blocks(len(anchors), step):
        terms = n_pair_block(f[start:stop], f_pos, start, l2_reg=run.spec.l2_reg)
        acc.add({"anchor": anchors[start:stop], "positive": positives[start:stop], **terms})
    return run.finish(acc.finish(), ("anchor", "positive", "s_pos", "neg_lse", "l2", "loss"),
                       f"{len(anchors)} pairs from {where}", classes_skipped=skipped)


def softmax_anchors(run: LossRun) -> LossResult:
    """InfoNCE or SupCon: every labelled row an anchor against all others, in blocks of anchors."""
    spec = run.spec
    labels = run.labels(f"{spec.kind} loss")
    xn = l2_normalized(run.x)
    n_rows = len(labels)
    step = rows_per_block(n_rows * 8 * 4, run.execution.budget_mib)
    block_fn = info_nce_block if spec.kind == "infonce" else supervised_contrastive_block
    if spec.kind == "infonce":
        sizes = np.bincount(labels).astype(np.int64)
        run.check_item_count(int((sizes * (sizes - 1)).sum()), "positive pairs")
    acc = run.accumulator()
    for start, stop in blocks(n_rows, step):
        cos = (xn[start:stop] @ xn.T).astype(np.float64)
        anchors = np.arange(start, stop, dtype=np.int64)
        acc.add(block_fn(cos, anchors, labels, temperature=float(spec.temperature or 1.0)))
        if run.execution.progress is not None:
            run.execution.progress(stop, n_rows)
    columns = ("anchor", "positive", "s_ap", "neg_lse", "loss") if spec.kind == "infonce" else (
        "anchor", "positives", "mean_s_ap", "lse", "loss")
    what = "positive pairs" if spec.kind == "infonce" else "anchors with a positive"
    return run.finish(acc.finish(), columns, f"{what} of {n_rows:,} labelled rows")
