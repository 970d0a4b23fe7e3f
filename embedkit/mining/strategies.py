"""Hard-negative mining strategies over a whole embedding set, exact by default.

Definitions (d = Euclidean distance ``‖a − b‖₂``, or cosine distance ``1 − cos`` with
``metric="cosine"``; a *positive* of anchor a is another row with a's label, a
*negative* a row with another label):

- ``hard``: each anchor's ``negatives`` nearest negatives.
- ``semi-hard`` (FaceNet): for an anchor a and positive p, the negatives n with
  ``d_ap < d_an <= d_ap + margin`` (``squared=True``: ``d_ap² < d_an² <= d_ap² + margin``);
  by default the closest such negative (``select="closest"``), or all (``select="all"``).
- ``batch-hard`` (Hermans et al. 2017): each anchor's farthest positive and nearest negative.
- ``easy``: the negatives with ``d_an − d_ap > margin`` (squared: ``d_an² − d_ap² > margin``);
  the closest such one per (a, p), or all.
- ``within-margin``: every negative pair ``i < j`` with ``d < margin``: exactly the pairs
  that carry a gradient in the contrastive loss ``max(margin − d, 0)²``.

Exact search scans every anchor against every row in BLAS tiles (see
:mod:`embedkit.mining.blocked`) with the per-anchor band applied inside the scan, so no
answer is missed because a neighbour list was too short. ``hard`` and ``batch-hard`` may
use an approximate FAISS index instead (``index="hnsw"|"ivf"``, or ``"auto"`` beyond
:data:`~embedkit.knn.AUTO_EXACT_MAX_ROWS` rows); its recall is measured against the
exact scan with ``check_recall``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.distances import Metric, is_similarity, paired_cosines, paired_distances
from embedkit.engines import Engine, LocalEngine, Progress
from embedkit.errors import InputError, OptionError
from embedkit.io import Dataset
from embedkit.mining.blocked import (
    Prepared,
    TooMany,
    band_all,
    band_closest,
    make_slots,
    nearest_negatives,
    pairs_below,
    prepare,
)
from embedkit.knn import (
    AUTO_EXACT_MAX_ROWS,
    INDEX_KINDS,
    IndexKind,
    approximate_nearest_negatives,
    build_index,
    sharded_approximate_nearest_negatives,
)
from embedkit.pairs import class_sizes, members_by_label

from embedkit.choices import Fallback, PositiveChoice, Select, Strategy  # noqa: E402  (shared with the CLI)

STRATEGIES: tuple[Strategy, ...] = ("hard", "semi-hard", "batch-hard", "easy", "within-margin")
POSITIVE_CHOICES: tuple[PositiveChoice, ...] = ("all", "hardest", "nearest", "random")
SELECTS: tuple[Select, ...] = ("closest", "all")
FALLBACKS: tuple[Fallback, ...] = ("none", "hardest", "tf-addons")

DEFINITIONS: dict[str, str] = {
    "hard": "each anchor's K nearest negatives (K = --negatives)",
    "semi-hard": "negatives with d_ap < d_an <= d_ap + margin (FaceNet); the closest one per (a, p), or all",
    "batch-hard": "each anchor's farthest positive and nearest negative (Hermans et al. 2017)",
    "easy": "negatives with d_an - d_ap > margin; the closest one per (a, p), or all",
    "within-margin": "every negative pair i < j with d < margin (the pairs with a gradient in the contrastive loss)",
}
TRIPLET_COLUMNS = ("anchor", "positive", "negative", "d_ap", "d_an")
PAIR_COLUMNS = ("i", "j", "y", "d")
QUANTILES = {"min": 0.0, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}
DEFAULT_MAX_ITEMS = 50_000_000
APPROXIMATE = ("hnsw", "ivf")
#: Approximate search returns k + this many candidate negatives, re-ranked by exact distance.
RERANK_EXTRA = 3
#: Relative tolerance under which two squared distances count as a tie in the recall check.
RECALL_TIE = 1e-5


@dataclass(frozen=True)
class MineSpec:
    """What to mine. ``positives=None`` takes the strategy's default: ``hardest`` for
    batch-hard, none for within-margin, else ``random`` (``positives_count`` per anchor,
    drawn with ``seed``)."""

    strategy: Strategy
    margin: float = 1.0
    negatives: int = 1
    positives: PositiveChoice | None = None
    positives_count: int = 1
    select: Select = "closest"
    fallback: Fallback = "none"
    squared: bool = False
    metric: Metric = "euclidean"
    index: IndexKind = "auto"
    batch_size: int | None = None
    seed: int = 0
    check_recall: int = 0
    nlist: int | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    max_items: int = DEFAULT_MAX_ITEMS

    @property
    def triplets(self) -> bool:
        return self.strategy != "within-margin"

    def validated(self) -> MineSpec:
        """This spec with the default positive choice filled in, or an :class:`OptionError`."""
        s = self.strategy
        if s not in STRATEGIES:
            raise OptionError(f"unknown strategy {s!r}; expected one of {', '.join(STRATEGIES)}")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise OptionError(f"--margin must be a finite number >= 0; got {self.margin}")
        if self.metric not in ("euclidean", "cosine"):
            raise OptionError(f"unknown metric {self.metric!r}; expected euclidean or cosine")
        if self.index not in INDEX_KINDS:
            raise OptionError(f"unknown index {self.index!r}; expected one of {', '.join(INDEX_KINDS)}")
        if self.negatives < 1:
            raise OptionError(f"--negatives must be >= 1; got {self.negatives}")
        if self.negatives != 1 and s != "hard":
            raise OptionError(f"--negatives applies to the hard strategy, not {s}")
        positives = self.positives
        if s == "within-margin":
            if positives is not None:
                raise OptionError("--positives does not apply to within-margin (it mines negative pairs)")
        elif s == "batch-hard":
            if positives not in (None, "hardest"):
                raise OptionError(f"batch-hard uses each anchor's farthest positive; --positives {positives} contradicts it")
            positives = "hardest"
        elif positives is None:
            positives = "random"
        if positives is not None and positives not in POSITIVE_CHOICES:
            raise OptionError(f"unknown positive choice {positives!r}; expected one of {', '.join(POSITIVE_CHOICES)}")
        if self.positives_count < 1:
            raise OptionError(f"--positives-count must be >= 1; got {self.positives_count}")
        if self.positives_count != 1 and positives != "random":
            raise OptionError("--positives-count applies to --positives random")
        if self.select not in SELECTS:
            raise OptionError(f"unknown selection {self.select!r}; expected closest or all")
        if self.select != "closest" and s not in ("semi-hard", "easy"):
            raise OptionError(f"--select applies to semi-hard and easy, not {s}")
        if self.fallback not in FALLBACKS:
            raise OptionError(f"unknown fallback {self.fallback!r}; expected one of {', '.join(FALLBACKS)}")
        if self.fallback != "none" and (s != "semi-hard" or self.select != "closest"):
            raise OptionError("--fallback applies to semi-hard with --select closest")
        if self.squared and (s not in ("semi-hard", "easy") or is_similarity(self.metric)):
            raise OptionError("--squared applies to the Euclidean bands of semi-hard and easy")
        if self.index in APPROXIMATE and s not in ("hard", "batch-hard"):
            raise OptionError(
                f"--index {self.index} supports hard and batch-hard; {s} needs a per-anchor threshold "
                "that a k-NN list cannot apply: use --index exact, or --batch-size B on large inputs"
            )
        if self.index in APPROXIMATE and self.batch_size is not None:
            raise OptionError("--batch-size mines each batch exactly; it does not combine with --index "
                              f"{self.index}")
        if self.batch_size is not None and self.batch_size < 2:
            raise OptionError(f"--batch-size must be >= 2; got {self.batch_size}")
        if self.check_recall < 0:
            raise OptionError(f"--check-recall must be >= 0; got {self.check_recall}")
        if self.check_recall and s not in ("hard", "batch-hard"):
            raise OptionError(f"--check-recall measures nearest-negative recall (hard, batch-hard), not {s}")
        if self.max_items < 1:
            raise OptionError(f"--max-items must be >= 1; got {self.max_items}")
        for name, value in (("nlist", self.nlist), ("nprobe", self.nprobe), ("ef-search", self.ef_search)):
            if value is not None and value < 1:
                raise OptionError(f"--{name} must be >= 1; got {value}")
        return replace(self, positives=positives)


@dataclass(frozen=True)
class MineResult:
    """Mined items and how they were found.

    ``items`` holds ``anchor, positive, negative, d_ap, d_an`` (triplets) or ``i, j, y, d``
    (pairs, y = 0: all negative pairs), row indices into the embeddings, distances float64
    recomputed from the rows. ``anchors``: rows that could be anchors (a positive exists;
    every row for within-margin); ``anchors_with_none``: those with no item;
    ``slots``/``slots_with_none``: (anchor, positive) pairs searched, and those whose band
    held no negative (before any fallback).
    """

    strategy: Strategy
    definition: str
    items: dict[str, np.ndarray]
    rows: int
    anchors: int
    anchors_with_none: int
    anchors_without_positive: int
    slots: int
    slots_with_none: int
    fallback_items: int
    index: str
    index_description: str
    index_reason: str
    recall: float | None
    recall_anchors: int
    seconds: float
    metric: Metric
    params: dict[str, object]
    distances: dict[str, dict[str, float]] = field(default_factory=dict)
    batches: int | None = None

    @property
    def count(self) -> int:
        first = next(iter(self.items.values()), np.empty(0))
        return int(len(first))

    @property
    def kind(self) -> str:
        return "triplets" if "negative" in self.items else "pairs"


@dataclass
class _Part:
    """Items of one mining pass in local row numbers, and its counts."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None
    anchors: int = 0
    anchors_with_none: int = 0
    anchors_without_positive: int = 0
    slots: int = 0
    slots_with_none: int = 0
    fallback_items: int = 0
    recall_hits: float = 0.0
    recall_anchors: int = 0


def mine_dataset(dataset: Dataset, spec: MineSpec, **kwargs: object) -> MineResult:
    """:func:`mine` on a loaded :class:`~embedkit.io.Dataset` (labels required)."""
    labels = dataset.require_labels(f"mining ({spec.strategy})")
    return mine(dataset.embeddings, labels, spec, **kwargs)  # type: ignore[arg-type]


def mine(
    embeddings: np.ndarray,
    labels: np.ndarray,
    spec: MineSpec,
    *,
    workers: int | None = None,
    engine: Engine | None = None,
    budget_mib: float = DEFAULT_BUDGET_MIB,
    progress: Progress | None = None,
) -> MineResult:
    """Mine ``spec.strategy`` items from ``embeddings`` (n, dim) with label codes (n,).

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
    index, reason = _choose_index(spec, n)
    prep = prepare(embeddings, spec.metric)
    description = "exact blocked scan (BLAS tiles + numba kernels)"
    batches = None
    if spec.batch_size is not None:
        part, batches = _mine_batches(prep, codes, spec, workers, budget_mib, progress, engine)
    elif index in APPROXIMATE:
        part, description = _mine_approximate(prep, embeddings, codes, spec, index, workers, budget_mib, progress,
                                              engine)
    else:
        part = _mine_exact(prep, codes, spec, np.random.default_rng(spec.seed), workers, budget_mib, progress,
                           engine)
    items = _finish_items(embeddings, codes, spec, part)
    recall = part.recall_hits / part.recall_anchors if part.recall_anchors else None
    return MineResult(
        strategy=spec.strategy, definition=_definition(spec), items=items, rows=n,
        anchors=part.anchors, anchors_with_none=part.anchors_with_none,
        anchors_without_positive=part.anchors_without_positive, slots=part.slots,
        slots_with_none=part.slots_with_none, fallback_items=part.fallback_items,
        index=index, index_description=description, index_reason=reason,
        recall=recall, recall_anchors=part.recall_anchors,
        seconds=time.perf_counter() - started, metric=spec.metric, params=_params(spec),
        distances=_distance_summary(items), batches=batches,
    )


def _definition(spec: MineSpec) -> str:
    text = DEFINITIONS[spec.strategy]
    if spec.squared:
        text = text.replace("d_ap < d_an <= d_ap + margin", "d_ap² < d_an² <= d_ap² + margin").replace(
            "d_an - d_ap > margin", "d_an² - d_ap² > margin")
    if spec.fallback == "tf-addons":
        text = ("TF-Addons triplet_semihard_loss: the closest negative with d_an > d_ap (no upper bound); "
                "if none, the farthest negative")
    return text


def _params(spec: MineSpec) -> dict[str, object]:
    params: dict[str, object] = {"metric": spec.metric}
    if spec.strategy in ("semi-hard", "easy", "within-margin"):
        params["margin"] = spec.margin
    if spec.strategy == "hard":
        params["negatives"] = spec.negatives
    if spec.positives is not None:
        params["positives"] = spec.positives
        if spec.positives == "random":
            params["positives_count"] = spec.positives_count
            params["seed"] = spec.seed
    if spec.strategy in ("semi-hard", "easy"):
        params["select"] = spec.select
        params["squared"] = spec.squared
    if spec.strategy == "semi-hard":
        params["fallback"] = spec.fallback
    if spec.batch_size is not None:
        params["batch_size"] = spec.batch_size
        params["seed"] = spec.seed
    return params


def _choose_index(spec: MineSpec, n: int) -> tuple[str, str]:
    if spec.batch_size is not None:
        return "exact", f"--batch-size {spec.batch_size}: exact within each batch"
    if spec.index != "auto":
        return spec.index, f"--index {spec.index}"
    if spec.strategy not in ("hard", "batch-hard"):
        return "exact", f"auto: {spec.strategy} needs the exact per-anchor band"
    if n <= AUTO_EXACT_MAX_ROWS:
        return "exact", f"auto: {n:,} rows <= {AUTO_EXACT_MAX_ROWS:,}, exact search is fast enough"
    return "ivf", f"auto: {n:,} rows > {AUTO_EXACT_MAX_ROWS:,}, exact search would grow as n²"


# -- positives ---------------------------------------------------------------------------------

def choose_positives(
    prep: Prepared, labels: np.ndarray, choice: PositiveChoice, count: int, rng: np.random.Generator,
    *, max_items: int = DEFAULT_MAX_ITEMS, budget_mib: float = DEFAULT_BUDGET_MIB,
) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, positives)`` for every row whose label has another row.

    ``all``: every other row of the label; ``hardest``/``nearest``: the farthest/nearest one
    (exact, ties to the smaller row); ``random``: ``count`` distinct ones (all when fewer).
    Sorted by anchor, then positive.
    """
    groups = [m for m in members_by_label(labels) if len(m) >= 2]
    if choice == "all":
        total = int(sum(len(m) * (len(m) - 1) for m in groups))
        if total > max_items:
            raise OptionError(f"--positives all gives {total:,} (anchor, positive) pairs (limit {max_items:,}); "
                              "use --positives random --positives-count K")
    anchors: list[np.ndarray] = []
    positives: list[np.ndarray] = []
    for members in groups:
        c = len(members)
        if choice == "all" or (choice == "random" and count >= c - 1):
            a = np.repeat(members, c - 1)
            p = np.tile(members, c).reshape(c, c)[~np.eye(c, dtype=bool)]
            anchors.append(a)
            positives.append(p)
        elif choice == "random":
            picks = _distinct_offsets(c, count, rng)  # (c, count) in 0..c-2
            picks = picks + (picks >= np.arange(c)[:, None])  # skip the anchor itself
            anchors.append(np.repeat(members, count))
            positives.append(np.sort(members[picks], axis=1).ravel())
        else:
            anchors.append(members)
            positives.append(_extreme_positive(prep, members, farthest=choice == "hardest", budget_mib=budget_mib))
    if not anchors:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a, p = np.concatenate(anchors), np.concatenate(positives)
    order = np.lexsort((p, a))
    return a[order].astype(np.int64), p[order].astype(np.int64)


def _distinct_offsets(c: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(c, count)`` distinct values per row from ``0 .. c-2`` (``count < c - 1``)."""
    if count * 2 > c - 1:
        return np.argsort(rng.random((c, c - 1)), axis=1)[:, :count]
    picks = rng.integers(0, c - 1, size=(c, count))
    while True:
        ordered = np.sort(picks, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1) if count > 1 else np.zeros(c, bool)
        if not clash.any():
            return picks
        picks[clash] = rng.integers(0, c - 1, size=(int(clash.sum()), count))


def _extreme_positive(prep: Prepared, members: np.ndarray, *, farthest: bool, budget_mib: float) -> np.ndarray:
    """Per member, the farthest (or nearest) other member; self excluded by id."""
    out = np.empty(len(members), dtype=np.int64)
    cols = prep.rows(members)
    terms = prep.terms[members]
    step = rows_per_block(len(members) * 8 * 2, budget_mib)
    for start, stop in blocks(len(members), step):
        keys = terms[start:stop, None] + terms[None, :] - 2.0 * (cols[start:stop] @ cols.T)
        np.maximum(keys, 0.0, out=keys)
        own = np.arange(start, stop)
        keys[own - start, own] = -np.inf if farthest else np.inf
        out[start:stop] = members[np.argmax(keys, axis=1) if farthest else np.argmin(keys, axis=1)]
    return out


# -- exact mining --------------------------------------------------------------------------------

def _mine_exact(prep: Prepared, labels: np.ndarray, spec: MineSpec, rng: np.random.Generator,
                workers: int | None, budget_mib: float, progress: Progress | None,
                engine: Engine | None = None) -> _Part:
    kw = {"budget_mib": budget_mib, "workers": workers, "progress": progress, "engine": engine}
    n = len(labels)
    if spec.strategy == "within-margin":
        try:
            i, j, _ = pairs_below(prep, labels, float(prep.to_key(spec.margin)), max_items=spec.max_items, **kw)
        except TooMany as exc:
            raise _too_many(spec, exc.count) from None
        touched = np.zeros(n, dtype=bool)
        touched[i] = True
        touched[j] = True
        return _Part(i, j, None, anchors=n, anchors_with_none=int(n - touched.sum()))
    anchors, positives = choose_positives(prep, labels, spec.positives or "random", spec.positives_count, rng,
                                          max_items=spec.max_items, budget_mib=budget_mib)
    unique_anchors = np.unique(anchors)
    without = n - len(unique_anchors)
    if spec.strategy in ("hard", "batch-hard"):
        k = spec.negatives
        near_v, near_j, _, _ = nearest_negatives(prep, labels, unique_anchors, k, **kw)
        part = _cross(anchors, positives, unique_anchors, near_j)
        part.anchors_without_positive = without
        if spec.check_recall:
            sample = _recall_sample(unique_anchors, spec.check_recall, spec.seed)
            hits = _recall(prep, labels, unique_anchors, near_j, sample, k, **kw)
            part.recall_hits, part.recall_anchors = hits, len(sample)
        return part
    return _mine_band(prep, labels, spec, anchors, positives, unique_anchors, without, kw)


def _cross(anchors: np.ndarray, positives: np.ndarray, unique_anchors: np.ndarray, near_j: np.ndarray) -> _Part:
    """Triplets: each anchor's positives × its found negatives."""
    where = np.searchsorted(unique_anchors, anchors)
    k = near_j.shape[1]
    a = np.repeat(anchors, k)
    p = np.repeat(positives, k)
    neg = near_j[where].ravel()
    keep = neg >= 0
    has = (near_j >= 0).any(axis=1)
    return _Part(a[keep], p[keep], neg[keep], anchors=len(unique_anchors),
                 anchors_with_none=int((~has).sum()), slots=len(anchors))


def _band_keys(prep: Prepared, spec: MineSpec, ap_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d_ap = prep.to_distance(ap_keys)
    m = spec.margin
    if spec.strategy == "semi-hard":
        if spec.fallback == "tf-addons":
            return ap_keys, np.full(len(ap_keys), np.inf)
        high = ap_keys + m if spec.squared else prep.to_key(d_ap + m)
        return ap_keys, np.maximum(high, ap_keys)
    low = ap_keys + m if spec.squared else prep.to_key(d_ap + m)
    return np.maximum(low, ap_keys), np.full(len(ap_keys), np.inf)


def _mine_band(prep: Prepared, labels: np.ndarray, spec: MineSpec, anchors: np.ndarray, positives: np.ndarray,
               unique_anchors: np.ndarray, without: int, kw: dict[str, object]) -> _Part:
    ap_keys = prep.pair_keys(anchors, positives)
    low, high = _band_keys(prep, spec, ap_keys)
    slots, order = make_slots(anchors, low, high)
    slot_anchor, slot_positive = anchors[order], positives[order]
    if spec.select == "all":
        try:
            slot, neg, _ = band_all(prep, labels, slots, max_items=spec.max_items, **kw)  # type: ignore[arg-type]
        except TooMany as exc:
            raise _too_many(spec, exc.count) from None
        filled = np.zeros(len(slot_anchor), dtype=bool)
        filled[slot] = True
        a, p, c = slot_anchor[slot], slot_positive[slot], neg
    else:
        _, best_j = band_closest(prep, labels, slots, **kw)  # type: ignore[arg-type]
        filled = best_j >= 0
        best_j = best_j.copy()
        fallback_items = 0
        if spec.fallback != "none" and not filled.all():
            need = np.unique(slot_anchor[~filled])
            _, near_j, _, far_j = nearest_negatives(prep, labels, need, 1, track_far=spec.fallback == "tf-addons", **kw)  # type: ignore[arg-type]
            pick = far_j if spec.fallback == "tf-addons" else near_j[:, 0]
            missing = np.flatnonzero(~filled)
            best_j[missing] = pick[np.searchsorted(need, slot_anchor[missing])]
            fallback_items = int((best_j[missing] >= 0).sum())
        got = best_j >= 0
        a, p, c = slot_anchor[got], slot_positive[got], best_j[got]
    has_item = np.zeros(len(labels), dtype=bool)
    has_item[a] = True
    part = _Part(a, p, c, anchors=len(unique_anchors),
                 anchors_with_none=int(len(unique_anchors) - has_item[unique_anchors].sum()),
                 anchors_without_positive=without, slots=len(slot_anchor),
                 slots_with_none=int((~filled).sum()))
    if spec.select == "closest":
        part.fallback_items = fallback_items
    return part


def _too_many(spec: MineSpec, count: int) -> OptionError:
    return OptionError(
        f"{spec.strategy} found more than {spec.max_items:,} items (at least {count:,}); "
        "lower --margin, use --select closest, or raise --max-items"
    )


# -- recall ------------------------------------------------------------------------------------

def _recall_sample(anchors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` anchors drawn without replacement (positions into ``anchors``), sorted."""
    rng = np.random.default_rng([seed, 7919])
    take = min(count, len(anchors))
    return np.sort(rng.choice(len(anchors), take, replace=False))


def _recall(prep: Prepared, labels: np.ndarray, anchors: np.ndarray, found: np.ndarray, sample: np.ndarray,
            k: int, **kw: object) -> float:
    """Sum over sampled anchors of (found negatives at least as close as the true k-th) / k.

    Both sides' keys come from the same expansion, so an exact search scores exactly 1;
    ties at the k-th distance (within a relative 1e-5 of its squared value) count as hits.
    """
    ids = anchors[sample]
    true_v, true_j, _, _ = nearest_negatives(prep, labels, ids, k, **kw)  # type: ignore[arg-type]
    hits = 0.0
    for row, anchor in enumerate(ids):
        truth = true_j[row][true_j[row] >= 0]
        if len(truth) == 0:
            hits += 1.0
            continue
        # Ties: keys within a relative 1e-5 (float32 rounding of the expansion) are equal.
        kth = prep.pair_keys(np.full(len(truth), anchor), truth).max() * (1 + RECALL_TIE) + RECALL_TIE
        got = found[sample[row]]
        got = got[got >= 0]
        keys = prep.pair_keys(np.full(len(got), anchor), got) if len(got) else np.empty(0)
        hits += min(1.0, float((keys <= kth).sum()) / len(truth))
    return hits


# -- approximate mining -------------------------------------------------------------------------

def _mine_approximate(prep: Prepared, embeddings: np.ndarray, labels: np.ndarray, spec: MineSpec, kind: str,
                      workers: int | None, budget_mib: float, progress: Progress | None,
                      engine: Engine | None = None) -> tuple[_Part, str]:
    n = len(labels)
    rng = np.random.default_rng(spec.seed)
    anchors, positives = choose_positives(prep, labels, spec.positives or "random", spec.positives_count, rng,
                                          max_items=spec.max_items, budget_mib=budget_mib)
    unique_anchors = np.unique(anchors)
    k = spec.negatives
    built = build_index(embeddings, kind, metric=spec.metric, nlist=spec.nlist, nprobe=spec.nprobe,
                        ef_search=spec.ef_search, seed=spec.seed, threads=workers, budget_mib=budget_mib,
                        progress=progress)
    # A few more candidates than k, re-ranked by exact distance: the index's codes are approximate.
    search_kw = {"metric": spec.metric, "candidates": k + RERANK_EXTRA, "budget_mib": budget_mib, "progress": progress}
    if engine is not None and engine.distributed:
        found, complete = sharded_approximate_nearest_negatives(engine, built, embeddings, labels, unique_anchors, k,
                                                                **search_kw)  # type: ignore[arg-type]
    else:
        found, complete = approximate_nearest_negatives(built, embeddings, labels, unique_anchors, k,
                                                        **search_kw)  # type: ignore[arg-type]
    rest = np.flatnonzero(~complete)
    description = built.description + f", {k + RERANK_EXTRA} candidates re-ranked exactly"
    if len(rest):
        # Anchors the index could not give k negatives: settle them exactly.
        _, exact_j, _, _ = nearest_negatives(prep, labels, unique_anchors[rest], k, budget_mib=budget_mib,
                                             workers=workers, engine=engine)
        found[rest] = -1
        found[rest, :k] = exact_j
        description += f"; {len(rest):,} anchors completed by exact scan"
    found = _rerank(prep, unique_anchors, found)[:, :k]
    part = _cross(anchors, positives, unique_anchors, found)
    part.anchors_without_positive = n - len(unique_anchors)
    if spec.check_recall:
        sample = _recall_sample(unique_anchors, spec.check_recall, spec.seed)
        part.recall_hits = _recall(prep, labels, unique_anchors, found, sample, k, budget_mib=budget_mib,
                                   workers=workers, engine=engine)
        part.recall_anchors = len(sample)
    return part, description


def _rerank(prep: Prepared, anchors: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Order each anchor's found negatives by exact key (ties to the smaller row)."""
    a = np.repeat(anchors, found.shape[1])
    flat = found.ravel()
    keys = np.full(len(flat), np.inf)
    ok = flat >= 0
    keys[ok] = prep.pair_keys(a[ok], flat[ok])
    keys = keys.reshape(found.shape)
    order = np.lexsort((np.where(found >= 0, found, np.iinfo(np.int64).max), keys), axis=1)
    return np.take_along_axis(found, order, axis=1)


# -- batches ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _BatchJob:
    """What every batch task reads (shared with the workers once)."""

    prep: Prepared
    labels: np.ndarray
    spec: MineSpec
    order: np.ndarray
    budget_mib: float


def _mine_batches(prep: Prepared, labels: np.ndarray, spec: MineSpec, workers: int | None, budget_mib: float,
                  progress: Progress | None, engine: Engine | None = None) -> tuple[_Part, int]:
    """Mine inside random batches of ``batch_size`` rows (a permutation drawn with ``seed``);
    batches are independent tasks on ``engine`` (each single-threaded), merged in batch order."""
    n = len(labels)
    size = int(spec.batch_size or n)
    job = _BatchJob(prep, labels, replace(spec, check_recall=0), np.random.default_rng(spec.seed).permutation(n),
                    budget_mib)
    bounds = [(number, start, stop) for number, (start, stop) in enumerate(blocks(n, size))]
    runner = engine if engine is not None else LocalEngine(workers)
    parts = list(runner.map(_mine_batch, runner.share(job), bounds, weights=[b[2] - b[1] for b in bounds],
                            progress=progress))
    merged = _Part(
        np.concatenate([p.a for p in parts]), np.concatenate([p.b for p in parts]),
        np.concatenate([p.c for p in parts if p.c is not None]) if spec.triplets else None,
    )
    for name in ("anchors", "anchors_with_none", "anchors_without_positive", "slots", "slots_with_none",
                 "fallback_items"):
        setattr(merged, name, sum(getattr(p, name) for p in parts))
    return merged, len(bounds)


def _mine_batch(job: _BatchJob, bounds: tuple[int, int, int]) -> _Part:
    """One batch, exact, on one thread; row ids mapped back to the whole file."""
    number, start, stop = bounds
    ids = np.sort(job.order[start:stop])
    sub_labels = job.labels[ids]
    sub = Prepared(np.ascontiguousarray(job.prep.x[ids]), job.prep.terms[ids], job.prep.metric, job.prep.centre)
    if len(np.unique(sub_labels)) < 2:
        part = _empty_batch(sub_labels, job.spec)
    else:
        rng = np.random.default_rng([job.spec.seed, number])
        part = _mine_exact(sub, sub_labels, job.spec, rng, 1, job.budget_mib, None)
    part.a, part.b = ids[part.a], ids[part.b]
    if part.c is not None:
        part.c = ids[part.c]
    return part


def _empty_batch(labels: np.ndarray, spec: MineSpec) -> _Part:
    """A batch of one label: no negatives, so every anchor has none."""
    empty = np.empty(0, np.int64)
    n = len(labels)
    if not spec.triplets:
        return _Part(empty, empty, None, anchors=n, anchors_with_none=n)
    anchors = n if n >= 2 else 0
    return _Part(empty, empty, empty.copy(), anchors=anchors, anchors_with_none=anchors,
                 anchors_without_positive=n - anchors)


# -- output ------------------------------------------------------------------------------------

def _finish_items(embeddings: np.ndarray, labels: np.ndarray, spec: MineSpec, part: _Part) -> dict[str, np.ndarray]:
    """Sorted item columns with distances recomputed from the rows in float64."""
    if spec.triplets:
        assert part.c is not None
        order = np.lexsort((part.c, part.b, part.a))
        a, p, c = part.a[order], part.b[order], part.c[order]
        return {"anchor": a, "positive": p, "negative": c,
                "d_ap": _distances(embeddings, a, p, spec.metric), "d_an": _distances(embeddings, a, c, spec.metric)}
    order = np.lexsort((part.b, part.a))
    i, j = part.a[order], part.b[order]
    return {"i": i, "j": j, "y": np.zeros(len(i), dtype=np.int64), "d": _distances(embeddings, i, j, spec.metric)}


def _distances(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray, metric: Metric) -> np.ndarray:
    if is_similarity(metric):
        return 1.0 - paired_cosines(embeddings, first, second)
    return paired_distances(embeddings, first, second)


def _distance_summary(items: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Quantiles (min, p05 … p95, max) and mean of each distance column and of d_an − d_ap."""
    columns = {"d_ap": items["d_ap"], "d_an": items["d_an"], "gap": items["d_an"] - items["d_ap"]} \
        if "d_an" in items else {"d": items["d"]}
    out: dict[str, dict[str, float]] = {}
    for name, values in columns.items():
        if len(values) == 0:
            continue
        qs = np.quantile(values, list(QUANTILES.values()))
        out[name] = {**{k: float(v) for k, v in zip(QUANTILES, qs)}, "mean": float(values.mean())}
    return out
