"""``compute_loss``: one entry point for every loss, its item source and its reduction.

Item sources:

- pair losses (``contrastive``, ``bce``): the rows of a pairs table (``i, j, y``), else
  every pair ``i < j`` of the labels (``y = 1`` when the labels match), scanned in tiles;
- ``triplet``: the rows of a triplets table (``anchor, positive, negative``), else every
  valid triplet of the labels (totalled per anchor with sorted prefix sums, O(n² log n));
- ``npair``: the ``y = 1`` rows of a pairs table as (anchor, positive), else the first two
  rows of each class;
- ``infonce``, ``supcon``: the labels (every row is an anchor against all others).

Nothing n×n is ever held: all work runs in blocks under ``budget_mib``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.distances import block_distances, paired_cosines, paired_distances
from embedkit.engines import Engine, Progress
from embedkit.errors import InputError, OptionError
from embedkit.io import Dataset
from embedkit.kernels import FORM_BCE, FORM_HALVED, FORM_LINEAR, FORM_SQUARED
from embedkit.losses.allpairs import scan_label_pairs
from embedkit.losses.bce import BCE_FORMULA, binary_cross_entropy_loss
from embedkit.losses.contrastive import (
    CONTRASTIVE_FORMS,
    CONTRASTIVE_FORMULAS,
    ContrastiveForm,
    contrastive_loss,
)
from embedkit.losses.infonce import INFONCE_FORMULA, info_nce_block
from embedkit.losses.npair import NPAIR_FORMULA, n_pair_block
from embedkit.losses.result import (
    REDUCTIONS,
    Aggregate,
    ItemAccumulator,
    LossResult,
    Reduction,
    finish_result,
)
from embedkit.losses.supcon import SUPCON_FORMULA, supervised_contrastive_block
from embedkit.losses.triplet import TRIPLET_FORMULAS, triplet_margin_loss
from embedkit.pairs import (
    check_binary,
    check_indices,
    check_triplets,
    count_label_pairs,
    count_label_triplets,
    first_pair_per_class,
    first_upper_pairs,
    members_by_label,
    upper_pairs,
)

LossKind = Literal["contrastive", "triplet", "npair", "infonce", "supcon", "bce"]
LOSS_KINDS: tuple[LossKind, ...] = ("contrastive", "triplet", "npair", "infonce", "supcon", "bce")
MARGIN_KINDS = ("contrastive", "triplet")
DEFAULT_TEMPERATURES = {"infonce": 0.07, "supcon": 0.1}

#: Label pairs up to this count are enumerated exactly; beyond, the tiled kernel scans them.
ENUMERATE_PAIRS_BELOW = 200_000
#: Label triplets up to this count are enumerated; beyond, sorted prefix sums total them.
ENUMERATE_TRIPLETS_BELOW = 200_000
#: Per-item output (``--reduction none`` or ``-o``), at most this many items.
MAX_OUTPUT_ITEMS = 20_000_000

_FORM_CODES = {"squared": FORM_SQUARED, "halved": FORM_HALVED, "linear": FORM_LINEAR}
_CONVENTION_PAIRS = "y=1 similar pair (same label), y=0 dissimilar"


@dataclass(frozen=True)
class LossSpec:
    """Which loss, and its hyper-parameters. ``temperature=None`` takes the kind's default
    (InfoNCE 0.07 as pytorch-metric-learning's NTXentLoss; SupCon 0.1)."""

    kind: LossKind
    margin: float = 1.0
    form: ContrastiveForm = "squared"
    squared: bool = True
    temperature: float | None = None
    scale: float = 10.0
    bias: float = -10.0
    l2_reg: float = 0.0
    normalize: bool = False
    reduction: Reduction = "mean"
    margins: tuple[float, ...] = ()

    def inapplicable(self) -> list[str]:
        """Options set away from their defaults that this kind does not use (for the CLI,
        which refuses them rather than ignore them)."""
        used = {
            "--margin": self.kind in MARGIN_KINDS, "--form": self.kind == "contrastive",
            "--no-squared": self.kind == "triplet", "--temperature": self.kind in DEFAULT_TEMPERATURES,
            "--scale": self.kind == "bce", "--bias": self.kind == "bce", "--l2-reg": self.kind == "npair",
        }
        changed = {
            "--margin": self.margin != 1.0, "--form": self.form != "squared", "--no-squared": not self.squared,
            "--temperature": self.temperature is not None, "--scale": self.scale != 10.0,
            "--bias": self.bias != -10.0, "--l2-reg": self.l2_reg != 0.0,
        }
        return [name for name in used if changed[name] and not used[name]]

    def validated(self) -> LossSpec:
        """This spec with defaults filled in, or an :class:`OptionError`."""
        if self.kind not in LOSS_KINDS:
            raise OptionError(f"unknown loss kind {self.kind!r}; expected one of {', '.join(LOSS_KINDS)}")
        if self.reduction not in REDUCTIONS:
            raise OptionError(f"unknown reduction {self.reduction!r}; expected one of {', '.join(REDUCTIONS)}")
        if self.form not in CONTRASTIVE_FORMS:
            raise OptionError(f"unknown contrastive form {self.form!r}; expected one of {', '.join(CONTRASTIVE_FORMS)}")
        for name, value in (("margin", self.margin), *((f"margins ({m})", m) for m in self.margins)):
            if not math.isfinite(value) or value < 0:
                raise OptionError(f"--{name.split(' ')[0]} must be a finite number >= 0; got {value}")
        if self.margins and self.kind not in MARGIN_KINDS:
            raise OptionError(f"--margins applies to contrastive and triplet losses, not {self.kind}")
        temperature = self.temperature if self.temperature is not None else DEFAULT_TEMPERATURES.get(self.kind)
        if temperature is not None and (not math.isfinite(temperature) or temperature <= 0):
            raise OptionError(f"--temperature must be > 0; got {temperature}")
        for name, value in (("scale", self.scale), ("bias", self.bias)):
            if not math.isfinite(value):
                raise OptionError(f"--{name} must be finite; got {value}")
        if not math.isfinite(self.l2_reg) or self.l2_reg < 0:
            raise OptionError(f"--l2-reg must be >= 0; got {self.l2_reg}")
        return replace(self, temperature=temperature)


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
    budget_mib: float = DEFAULT_BUDGET_MIB,
    workers: int | None = None,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> LossResult:
    """Compute ``spec``'s loss over ``dataset`` (see the module docstring for item sources).

    ``trace`` first items and ``top`` largest items are kept for display; every item is
    kept when ``keep_items`` or the reduction is ``none``. ``engine`` runs the tiled
    all-pairs scan (default: local threads, ``workers`` of them).
    """
    spec = spec.validated()
    keep = keep_items or spec.reduction == "none"
    if pairs is not None and triplets is not None:
        raise OptionError("give --pairs or --triplets, not both")
    if triplets is not None and spec.kind != "triplet":
        raise OptionError(f"--triplets applies to the triplet loss, not {spec.kind}")
    if pairs is not None and spec.kind not in ("contrastive", "bce", "npair"):
        raise OptionError(f"--pairs applies to contrastive, bce and npair losses, not {spec.kind}")
    x = l2_normalized(dataset.embeddings) if spec.normalize else dataset.embeddings
    context = _Context(dataset, x, spec, trace, top, keep, budget_mib, workers, engine, progress)
    if spec.kind in ("contrastive", "bce"):
        if pairs is not None:
            return context.explicit_pairs(pairs, pairs_source)
        return context.label_pairs()
    if spec.kind == "triplet":
        if triplets is not None:
            return context.explicit_triplets(triplets, triplets_source)
        return context.label_triplets()
    if spec.kind == "npair":
        return context.npair(pairs, pairs_source)
    return context.anchors()


@dataclass
class _Context:
    dataset: Dataset
    x: np.ndarray
    spec: LossSpec
    trace: int
    top: int
    keep: bool
    budget_mib: float
    workers: int | None
    engine: Engine | None
    progress: Progress | None

    # -- shared ---------------------------------------------------------------------------
    def accumulator(self) -> ItemAccumulator:
        return ItemAccumulator(head=self.trace, top=self.top, keep_items=self.keep, margins=self.spec.margins)

    def check_item_count(self, count: int, what: str) -> None:
        if self.keep and count > MAX_OUTPUT_ITEMS:
            mining = ("`embedkit mine --strategy semi-hard -o t.csv` and pass --triplets t.csv"
                      if self.spec.kind == "triplet" else
                      "`embedkit mine --strategy within-margin -o p.csv` and pass --pairs p.csv")
            raise OptionError(
                f"{what}: {count:,} items are too many to list (limit {MAX_OUTPUT_ITEMS:,}); "
                f"use --reduction mean/sum without -o, or mine the informative ones with {mining}"
            )

    def finish(self, aggregate: Aggregate, columns: tuple[str, ...], source: str, **details: object) -> LossResult:
        spec = self.spec
        params: dict[str, object] = {"normalize": spec.normalize}
        if spec.kind == "contrastive":
            formula = CONTRASTIVE_FORMULAS[spec.form]
            distance = "Euclidean D = ‖a − b‖₂ (unsquared)"
            params.update(margin=spec.margin, form=spec.form)
            convention = _CONVENTION_PAIRS
        elif spec.kind == "triplet":
            formula = TRIPLET_FORMULAS[spec.squared]
            distance = "Euclidean, squared (FaceNet)" if spec.squared else "Euclidean, unsquared (torch.nn)"
            params.update(margin=spec.margin, squared=spec.squared)
            convention = "positive: same label as the anchor; negative: another label"
        elif spec.kind == "bce":
            formula = BCE_FORMULA
            distance = "cosine similarity"
            params.update(scale=spec.scale, bias=spec.bias)
            convention = _CONVENTION_PAIRS
        elif spec.kind == "npair":
            formula = NPAIR_FORMULA
            distance = "dot product"
            params.update(l2_reg=spec.l2_reg)
            convention = "one (anchor, positive) pair per class; other classes' positives are negatives"
        elif spec.kind == "infonce":
            formula = INFONCE_FORMULA
            distance = "cosine similarity"
            params.update(temperature=spec.temperature)
            convention = "items: ordered positive pairs (same label, a ≠ p); negatives: other labels"
        else:
            formula = SUPCON_FORMULA
            distance = "cosine similarity"
            params.update(temperature=spec.temperature)
            convention = "items: anchors with a positive (same label); denominator: all other rows"
        return finish_result(
            aggregate,
            reduction=spec.reduction,
            kind=spec.kind,
            formula=formula,
            distance=distance,
            convention=convention,
            columns=columns,
            params=params,
            source=source,
            details=details,
        )

    def labels(self, purpose: str) -> np.ndarray:
        return self.dataset.require_labels(purpose)

    # -- pair losses ---------------------------------------------------------------------
    def pair_block(self, i: np.ndarray, j: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        spec = self.spec
        if spec.kind == "bce":
            cos = paired_cosines(self.x, i, j, budget_mib=self.budget_mib)
            loss = binary_cross_entropy_loss(cos, y, scale=spec.scale, bias=spec.bias)
            return {"i": i, "j": j, "y": y.astype(np.int64), "cos": cos, "loss": loss}, []
        d = paired_distances(self.x, i, j, budget_mib=self.budget_mib)
        loss = contrastive_loss(d, y, margin=spec.margin, form=spec.form)
        sweep = [contrastive_loss(d, y, margin=m, form=spec.form) for m in spec.margins]
        return {"i": i, "j": j, "y": y.astype(np.int64), "d": d, "loss": loss}, sweep

    def pair_columns(self) -> tuple[str, ...]:
        return ("i", "j", "y", "cos" if self.spec.kind == "bce" else "d", "loss")

    def explicit_pairs(self, table: dict[str, np.ndarray], source: str) -> LossResult:
        for name in ("i", "j", "y"):
            if name not in table:
                raise InputError(f"{source}: missing column '{name}' (a pairs table has columns i, j, y)")
        check_indices(table, ("i", "j"), self.dataset.rows, source)
        y = check_binary(table["y"], "y", source)
        self.check_item_count(len(y), source)
        acc = self.accumulator()
        step = rows_per_block(self.x.shape[1] * 8 * 4, self.budget_mib)
        for start, stop in blocks(len(y), step):
            block, sweep = self.pair_block(table["i"][start:stop], table["j"][start:stop], y[start:stop])
            acc.add(block, sweep)
        similar = int(y.sum())
        return self.finish(acc.finish(), self.pair_columns(), f"{source} ({len(y)} pairs)",
                           similar_pairs=similar, dissimilar_pairs=len(y) - similar)

    def label_pairs(self) -> LossResult:
        labels = self.labels(f"{self.spec.kind} loss over all pairs")
        n = len(labels)
        similar, dissimilar = count_label_pairs(labels)
        count = similar + dissimilar
        source = f"all {count:,} label pairs i < j"
        self.check_item_count(count, source)
        if self.keep or count <= ENUMERATE_PAIRS_BELOW:
            acc = self.accumulator()
            for i, j in upper_pairs(n, max(1, rows_per_block(self.x.shape[1] * 8 * 4, self.budget_mib))):
                block, sweep = self.pair_block(i, j, labels[i] == labels[j])
                acc.add(block, sweep)
            return self.finish(acc.finish(), self.pair_columns(), source,
                               similar_pairs=similar, dissimilar_pairs=dissimilar, method="enumerated")
        spec = self.spec
        form = FORM_BCE if spec.kind == "bce" else _FORM_CODES[spec.form]
        margins = (spec.margin, *spec.margins)
        scan = scan_label_pairs(
            self.x, labels, form=form, margins=margins, scale=spec.scale, bias=spec.bias,
            top=self.top, workers=self.workers, engine=self.engine, progress=self.progress,
        )
        head_i, head_j = first_upper_pairs(n, self.trace)
        head, _ = self.pair_block(head_i, head_j, labels[head_i] == labels[head_j])
        value_column = "cos" if spec.kind == "bce" else "d"
        top = {"i": scan.top["i"], "j": scan.top["j"], "y": scan.top["y"], value_column: scan.top["value"], "loss": scan.top["loss"]}
        if spec.kind == "contrastive" and len(top["i"]):
            # Report the exact distance of the few top pairs, not the tile's expansion.
            exact, _ = self.pair_block(top["i"], top["j"], top["y"].astype(bool))
            top["d"] = exact["d"]
        aggregate = Aggregate(
            total=float(scan.totals[0]), count=scan.count, active=int(scan.actives[0]),
            head=head, top=top, margins=spec.margins,
            sweep_totals=tuple(float(t) for t in scan.totals[1:]),
            sweep_active=tuple(int(a) for a in scan.actives[1:]),
        )
        return self.finish(aggregate, self.pair_columns(), source,
                           similar_pairs=similar, dissimilar_pairs=dissimilar, method="tiled kernel")

    # -- triplets ------------------------------------------------------------------------
    def triplet_block(self, a: np.ndarray, p: np.ndarray, n: np.ndarray,
                      d_ap: np.ndarray, d_an: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        spec = self.spec
        loss = triplet_margin_loss(d_ap, d_an, margin=spec.margin, squared=spec.squared)
        sweep = [triplet_margin_loss(d_ap, d_an, margin=m, squared=spec.squared) for m in spec.margins]
        return {"anchor": a, "positive": p, "negative": n, "d_ap": d_ap, "d_an": d_an, "loss": loss}, sweep

    def explicit_triplets(self, table: dict[str, np.ndarray], source: str) -> LossResult:
        names = ("anchor", "positive", "negative")
        for name in names:
            if name not in table:
                raise InputError(f"{source}: missing column '{name}' (a triplets table has columns anchor, positive, negative)")
        check_indices(table, names, self.dataset.rows, source)
        check_triplets(table, self.dataset.labels, source)
        count = len(table["anchor"])
        self.check_item_count(count, source)
        acc = self.accumulator()
        step = rows_per_block(self.x.shape[1] * 8 * 6, self.budget_mib)
        for start, stop in blocks(count, step):
            a, p, n = (table[k][start:stop] for k in names)
            d_ap = paired_distances(self.x, a, p, budget_mib=self.budget_mib)
            d_an = paired_distances(self.x, a, n, budget_mib=self.budget_mib)
            acc.add(*self.triplet_block(a, p, n, d_ap, d_an))
        return self.finish(acc.finish(), ("anchor", "positive", "negative", "d_ap", "d_an", "loss"),
                           f"{source} ({count} triplets)")

    def label_triplets(self) -> LossResult:
        labels = self.labels("triplet loss over all triplets")
        count = count_label_triplets(labels)
        self.check_item_count(count, "label triplets")
        source = f"all {count:,} label triplets"
        columns = ("anchor", "positive", "negative", "d_ap", "d_an", "loss")
        if self.keep or count <= ENUMERATE_TRIPLETS_BELOW:
            acc = self.accumulator()
            for anchor, positives, negatives, row in self.anchor_rows(labels):
                p = np.repeat(positives, len(negatives))
                n = np.tile(negatives, len(positives))
                a = np.full(len(p), anchor, dtype=np.int64)
                acc.add(*self.triplet_block(a, p, n, row[p], row[n]))
            return self.finish(acc.finish(), columns, source, method="enumerated")
        return self.finish(self.sorted_triplet_sums(labels), columns, source, method="sorted prefix sums")

    def anchor_rows(self, labels: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(anchor, positives, negatives, distances to every row)`` for anchors having both."""
        members = members_by_label(labels)
        n_rows = len(labels)
        x64 = np.asarray(self.x, dtype=np.float64)
        sq = np.einsum("ij,ij->i", x64, x64)
        for start, stop in blocks(n_rows, rows_per_block(n_rows * 8 * 2, self.budget_mib)):
            dist = block_distances(x64[start:stop], x64, rows_sq=sq[start:stop], columns_sq=sq)
            for row, anchor in enumerate(range(start, stop)):
                same = members[labels[anchor]]
                if len(same) < 2 or len(same) == n_rows:
                    continue
                dist[row, anchor] = 0.0  # the expansion leaves ~1e-8 on the diagonal
                negative = np.ones(n_rows, dtype=bool)
                negative[same] = False
                yield anchor, same[same != anchor], np.flatnonzero(negative), dist[row]

    def sorted_triplet_sums(self, labels: np.ndarray) -> Aggregate:
        """All label triplets without enumerating them: per anchor, negatives sorted once, then
        ``Σ_n max(c − v_n, 0) = K·c − Σ_{k<K} v_(k)`` with ``c = v_ap + α`` and ``K`` the
        number of negatives with ``v_n < c`` (v = squared or plain distance). O(n² log n).
        The top items come from each anchor's ``top`` largest-v_ap positives × ``top``
        nearest negatives, which must contain that anchor's share of the global top."""
        spec = self.spec
        margins = (spec.margin, *spec.margins)
        totals = np.zeros(len(margins))
        actives = np.zeros(len(margins), dtype=np.int64)
        count = 0
        head = ItemAccumulator(head=self.trace, top=0, keep_items=False)
        top = ItemAccumulator(head=0, top=self.top, keep_items=False)
        for anchor, positives, negatives, row in self.anchor_rows(labels):
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
            if head.count < self.trace:
                need = self.trace - head.count
                p = np.repeat(positives, len(negatives))[:need]
                n = np.tile(negatives, len(positives))[:need]
                head.add(self.triplet_block(np.full(len(p), anchor), p, n, row[p], row[n])[0])
            if self.top:
                best_p = np.sort(positives[np.lexsort((positives, -v_pos))[: self.top]])
                best_n = np.sort(negatives[order[: self.top]])
                p = np.repeat(best_p, len(best_n))
                n = np.tile(best_n, len(best_p))
                top.add(self.triplet_block(np.full(len(p), anchor), p, n, row[p], row[n])[0])
        return Aggregate(
            total=float(totals[0]), count=count, active=int(actives[0]),
            head=head.finish().head, top=top.finish().top, margins=spec.margins,
            sweep_totals=tuple(float(t) for t in totals[1:]), sweep_active=tuple(int(a) for a in actives[1:]),
        )

    # -- softmax losses ------------------------------------------------------------------
    def npair(self, table: dict[str, np.ndarray] | None, source: str) -> LossResult:
        labels = self.dataset.labels
        if table is not None:
            for name in ("i", "j"):
                if name not in table:
                    raise InputError(f"{source}: missing column '{name}' (npair reads pairs i, j[, y])")
            check_indices(table, ("i", "j"), self.dataset.rows, source)
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
            anchors, positives, skipped = first_pair_per_class(self.labels("npair loss"))
            where = "the first two rows of each class"
        if len(anchors) < 2:
            raise InputError(f"npair loss needs pairs from at least 2 classes; found {len(anchors)} "
                             f"class{'' if len(anchors) == 1 else 'es'} with two or more rows")
        f = np.asarray(self.x[anchors], dtype=np.float64)
        f_pos = np.asarray(self.x[positives], dtype=np.float64)
        acc = self.accumulator()
        step = rows_per_block(len(anchors) * 8 * 3, self.budget_mib)
        for start, stop in blocks(len(anchors), step):
            terms = n_pair_block(f[start:stop], f_pos, start, l2_reg=self.spec.l2_reg)
            acc.add({"anchor": anchors[start:stop], "positive": positives[start:stop], **terms})
        return self.finish(acc.finish(), ("anchor", "positive", "s_pos", "neg_lse", "l2", "loss"),
                           f"{len(anchors)} pairs from {where}", classes_skipped=skipped)

    def anchors(self) -> LossResult:
        spec = self.spec
        labels = self.labels(f"{spec.kind} loss")
        xn = l2_normalized(self.x)
        n_rows = len(labels)
        step = rows_per_block(n_rows * 8 * 4, self.budget_mib)
        block_fn = info_nce_block if spec.kind == "infonce" else supervised_contrastive_block
        if spec.kind == "infonce":
            sizes = np.bincount(labels).astype(np.int64)
            self.check_item_count(int((sizes * (sizes - 1)).sum()), "positive pairs")
        acc = self.accumulator()
        for start, stop in blocks(n_rows, step):
            cos = (xn[start:stop] @ xn.T).astype(np.float64)
            anchors = np.arange(start, stop, dtype=np.int64)
            acc.add(block_fn(cos, anchors, labels, temperature=float(spec.temperature or 1.0)))
            if self.progress is not None:
                self.progress(stop, n_rows)
        columns = ("anchor", "positive", "s_ap", "neg_lse", "loss") if spec.kind == "infonce" else (
            "anchor", "positives", "mean_s_ap", "lse", "loss")
        what = "positive pairs" if spec.kind == "infonce" else "anchors with a positive"
        return self.finish(acc.finish(), columns, f"{what} of {n_rows:,} labelled rows")


