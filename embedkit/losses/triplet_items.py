"""Triplet items: the rows of a triplets table ``anchor, positive, negative``, else every
valid triplet of the labels.

Up to ``run.enumerate_triplets_below`` label triplets are enumerated; beyond, they are
totalled per anchor with sorted prefix sums (O(n² log n)) without being listed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from embedkit.chunking import blocks, rows_per_block
from embedkit.distances import block_distances, paired_distances
from embedkit.errors import InputError
from embedkit.losses.result import Aggregate, ItemAccumulator, LossResult
from embedkit.losses.run import LossRun
from embedkit.losses.triplet import triplet_margin_loss
from embedkit.pairs import check_indices, check_triplets, count_label_triplets, members_by_label


def triplet_block(run: LossRun, a: np.ndarray, p: np.ndarray, n: np.ndarray,
                  d_ap: np.ndarray, d_an: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The items of triplets with distances ``d_ap``, ``d_an``, and the loss at each sweep margin."""
    spec = run.spec
    loss = triplet_margin_loss(d_ap, d_an, margin=spec.margin, squared=spec.squared)
    sweep = [triplet_margin_loss(d_ap, d_an, margin=m, squared=spec.squared) for m in spec.margins]
    return {"anchor": a, "positive": p, "negative": n, "d_ap": d_ap, "d_an": d_an, "loss": loss}, sweep


def explicit_triplets(run: LossRun, table: dict[str, np.ndarray], source: str) -> LossResult:
    """The loss over the rows of a triplets table (checked against the labels when present)."""
    names = ("anchor", "positive", "negative")
    for name in names:
        if name not in table:
            raise InputError(f"{source}: missing column '{name}' (a triplets table has columns anchor, positive, negative)")
    check_indices(table, names, run.dataset.rows, source)
    check_triplets(table, run.dataset.labels, source)
    count = len(table["anchor"])
    run.check_item_count(count, source)
    acc = run.accumulator()
    step = rows_per_block(run.x.shape[1] * 8 * 6, run.execution.budget_mib)
    for start, stop in blocks(count, step):
        a, p, n = (table[k][start:stop] for k in names)
        d_ap = paired_distances(run.x, a, p, budget_mib=run.execution.budget_mib)
        d_an = paired_distances(run.x, a, n, budget_mib=run.execution.budget_mib)
        acc.add(*triplet_block(run, a, p, n, d_ap, d_an))
    return run.finish(acc.finish(), ("anchor", "positive", "negative", "d_ap", "d_an", "loss"),
                       f"{source} ({count} triplets)")


def label_triplets(run: LossRun) -> LossResult:
    """The loss over every valid triplet of the labels: enumerated, or totalled by sorted prefix sums."""
    labels = run.labels("triplet loss over all triplets")
    count = count_label_triplets(labels)
    run.check_item_count(count, "label triplets")
    source = f"all {count:,} label triplets"
    columns = ("anchor", "positive", "negative", "d_ap", "d_an", "loss")
    if run.keep or count <= run.enumerate_triplets_below:
        acc = run.accumulator()
        for anchor, positives, negatives, row in anchor_rows(run, labels):
            p = np.repeat(positives, len(negatives))
            n = np.tile(negatives, len(positives))
            a = np.full(len(p), anchor, dtype=np.int64)
            acc.add(*triplet_block(run, a, p, n, row[p], row[n]))
        return run.finish(acc.finish(), columns, source, method="enumerated")
    return run.finish(sorted_triplet_sums(run, labels), columns, source, method="sorted prefix sums")


def anchor_rows(run: LossRun, labels: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(anchor, positives, negatives, distances to every row)`` for anchors having both."""
    members = members_by_label(labels)
    n_rows = len(labels)
    x64 = np.asarray(run.x, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x64, x64)
    for start, stop in blocks(n_rows, rows_per_block(n_rows * 8 * 2, run.execution.budget_mib)):
        dist = block_distances(x64[start:stop], x64, rows_sq=sq[start:stop], columns_sq=sq)
        for row, anchor in enumerate(range(start, stop)):
            same = members[labels[anchor]]
            if len(same) < 2 or len(same) == n_rows:
                continue
            dist[row, anchor] = 0.0  # the expansion leaves ~1e-8 on the diagonal
            negative = np.ones(n_rows, dtype=bool)
            negative[same] = False
            yield anchor, same[same != anchor], np.flatnonzero(negative), dist[row]


def sorted_triplet_sums(run: LossRun, labels: np.ndarray) -> Aggregate:
    """All label triplets without enumerating them: per anchor, negatives sorted once, then
    ``Σ_n max(c − v_n, 0) = K·c − Σ_{k<K} v_(k)`` with ``c = v_ap + α`` and ``K`` the
    number of negatives with ``v_n < c`` (v = squared or plain distance). O(n² log n).
    The top items come from each anchor's ``top`` largest-v_ap positives × ``top``
    nearest negatives, which must contain that anchor's share of the global top."""
    spec = run.spec
    margins = (spec.margin, *spec.margins)
    totals = np.zeros(len(margins))
    actives = np.zeros(len(margins), dtype=np.int64)
    count = 0
    head = ItemAccumulator(head=run.trace, top=0, keep_items=False)
    top = ItemAccumulator(head=0, top=run.top, keep_items=False)
    for anchor, positives, negatives, row in anchor_rows(run, labels):
        v = row * row if spec.squared else row
        order = np.argsort(v[negatives], kind="stable")
        v_neg = v[negatives][order]
        prefix = np.concatenate([[0.0], np.cumsum(v_neg)])
        v_pos = v[positives]
        for k, margin in enumerate(margins):
            c = v_pos + margin
            below = np.searchsorted(v_neg, c, side="left")
            totals[k] += float(np.sum(below * c - prefix[below]))
            actives[k] += int(below.sum())
        count += len(positives) * len(negatives)
        if head.count < run.trace:
            need = run.trace - head.count
            p = np.repeat(positives, len(negatives))[:need]
            n = np.tile(negatives, len(positives))[:need]
            head.add(triplet_block(run, np.full(len(p), anchor), p, n, row[p], row[n])[0])
        if run.top:
            best_p = np.sort(positives[np.lexsort((positives, -v_pos))[: run.top]])
            best_n = np.sort(negatives[order[: run.top]])
            p = np.repeat(best_p, len(best_n))
            n = np.tile(best_n, len(best_p))
            top.add(triplet_block(run, np.full(len(p), anchor), p, n, row[p], row[n])[0])
    return Aggregate(
        total=float(totals[0]), count=count, active=int(actives[0]),
        head=head.finish().head, top=top.finish().top, margins=spec.margins,
        sweep_totals=tuple(float(t) for t in totals[1:]), sweep_active=tuple(int(a) for a in actives[1:]),
    )
