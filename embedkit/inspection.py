"""What an embedding file looks like: shape, norms, bad rows, duplicates, labels, pair
distances, and a suggested contrastive margin with its reasoning.

Distances are Euclidean and unsquared (the ``D`` of the contrastive loss), on the
finite rows only. Positive pairs are pairs ``i < j`` with the same label, negative
pairs the others. All pairs are measured exactly (in row blocks under a memory budget)
while there are at most ``exact_pairs`` of them; beyond that, ``sample`` positive and
``sample`` negative pairs are drawn uniformly with replacement with a fixed ``seed``
(all positive pairs are used when there are at most ``sample`` of them).

**Suggested margin.** For a margin ``m``: ``negatives_inside(m)`` = fraction of negative
pairs with ``D < m`` (they still get pushed by the loss), ``positives_beyond(m)`` =
fraction of positive pairs with ``D > m``. The rule: pick ``m`` minimising
``negatives_inside(m) + positives_beyond(m)``: the distance that best separates the
two kinds, each weighted as a *fraction of its own kind*, so 0.5 % positives weigh as
much as 99.5 % negatives (maximum Youden J). When a range of margins ties (e.g. a gap
between the largest positive and the smallest negative distance) its midpoint is taken.

**Overlap** = ``Σ_b min(p_b, n_b)`` over the shared histogram bins, ``p_b`` and ``n_b``
the fractions of positive and negative pairs in bin ``b`` (0: disjoint, 1: identical).
**Ranking error** = ``P(D_neg < D_pos) + ½·P(D_neg = D_pos)`` for a random positive and
negative pair (1 − ROC AUC of the distance as a same-label score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.choices import DEFAULT_BINS, DEFAULT_EXACT_PAIRS, DEFAULT_SAMPLE, DEFAULT_SEED
from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, row_blocks, rows_per_block
from embedkit.dataset import LoadedEmbeddings
from embedkit.distances import block_distances, paired_distances, squared_norms
from embedkit.pairs import class_sizes, count_label_pairs, members_by_label
from embedkit.shards import Shard

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Rows "look L2-normalised" when every finite row's norm is within this of 1.
NORMALISED_TOLERANCE = 1e-3
PARTS: tuple[str, ...] = ("norms", "duplicates", "labels", "distances")


@dataclass(frozen=True)
class NormStats:
    """L2 norms of the finite rows."""

    min: float
    mean: float
    max: float
    zero_rows: int
    normalised: bool


@dataclass(frozen=True)
class Duplicates:
    """Exact duplicate rows: ``rows`` repeat an earlier row; ``groups`` distinct repeated
    vectors; ``conflicting_groups`` of them carry more than one label."""

    rows: int
    groups: int
    conflicting_groups: int | None
    example: tuple[int, int] | None


@dataclass(frozen=True)
class LabelStats:
    classes: int
    names: np.ndarray
    counts: np.ndarray
    singleton_classes: int
    positive_pairs: int
    negative_pairs: int

    @property
    def positive_fraction(self) -> float:
        total = self.positive_pairs + self.negative_pairs
        return self.positive_pairs / total if total else 0.0


@dataclass(frozen=True)
class Distribution:
    count: int
    mean: float
    min: float
    max: float
    quantiles: dict[float, float]


@dataclass(frozen=True)
class MarginPoint:
    margin: float
    negatives_inside: float
    positives_beyond: float


@dataclass(frozen=True)
class MarginSuggestion:
    margin: float
    negatives_inside: float
    positives_beyond: float
    rule: str
    reasoning: tuple[str, ...]
    candidates: tuple[MarginPoint, ...]
    curve: dict[str, np.ndarray]


@dataclass(frozen=True)
class PairDistances:
    method: str  # "exact" or "sampled"
    seed: int | None
    sample: int | None
    positive: Distribution
    negative: Distribution
    edges: np.ndarray
    positive_counts: np.ndarray
    negative_counts: np.ndarray
    overlap: float
    ranking_error: float
    margin: MarginSuggestion


@dataclass(frozen=True)
class Inspection:
    """Everything ``embedkit inspect`` reports; parts not asked for (or not computable) are None."""

    source: str
    rows: int
    dim: int
    dtype: str
    nan_rows: int
    inf_rows: int
    normalize: bool
    norms: NormStats | None
    duplicates: Duplicates | None
    labels: LabelStats | None
    distances: PairDistances | None
    notes: tuple[str, ...] = ()
    #: The files read, in row order (see :class:`embedkit.shards.Shard`).
    shards: tuple[Shard, ...] = ()

    @property
    def nonfinite_rows(self) -> int:
        return self.nan_rows + self.inf_rows

    @property
    def figures(self) -> dict[str, float]:
        """Every figure by its ``check`` name (see :func:`inspection_figure_names`)."""
        out: dict[str, float] = {
            "rows": self.rows, "dim": self.dim, "nan_rows": self.nan_rows, "inf_rows": self.inf_rows,
            "nonfinite_rows": self.nonfinite_rows,
        }
        if self.norms is not None:
            out.update(norm_min=self.norms.min, norm_mean=self.norms.mean, norm_max=self.norms.max,
                       zero_rows=self.norms.zero_rows)
        if self.duplicates is not None:
            out["duplicate_rows"] = self.duplicates.rows
        if self.labels is not None:
            out.update(classes=self.labels.classes, singleton_classes=self.labels.singleton_classes,
                       positive_pairs=self.labels.positive_pairs, negative_pairs=self.labels.negative_pairs,
                       positive_fraction=self.labels.positive_fraction)
        if self.distances is not None:
            d = self.distances
            out.update(overlap=d.overlap, ranking_error=d.ranking_error, suggested_margin=d.margin.margin,
                       margin_negatives_inside=d.margin.negatives_inside,
                       margin_positives_beyond=d.margin.positives_beyond,
                       positive_distance_mean=d.positive.mean, negative_distance_mean=d.negative.mean)
            for kind, dist in (("positive", d.positive), ("negative", d.negative)):
                for q, value in dist.quantiles.items():
                    out[f"{kind}_distance_{quantile_name(q)}"] = value
        return out


def quantile_name(q: float) -> str:
    """``0.05`` -> ``p05``; ``0.5`` -> ``p50``."""
    return f"p{round(q * 100):02d}"


#: Figure names and the part of the inspection that computes them.
FIGURE_PARTS: dict[str, str] = {
    **dict.fromkeys(("rows", "dim", "nan_rows", "inf_rows", "nonfinite_rows"), "base"),
    **dict.fromkeys(("norm_min", "norm_mean", "norm_max", "zero_rows"), "norms"),
    "duplicate_rows": "duplicates",
    **dict.fromkeys(("classes", "singleton_classes", "positive_pairs", "negative_pairs", "positive_fraction"), "labels"),
    **dict.fromkeys(("overlap", "ranking_error", "suggested_margin", "margin_negatives_inside",
                     "margin_positives_beyond", "positive_distance_mean", "negative_distance_mean"), "distances"),
    **{f"{kind}_distance_{quantile_name(q)}": "distances" for kind in ("positive", "negative") for q in QUANTILES},
}


def norm_stats(x: np.ndarray, *, budget_mib: float = 32.0, rows: np.ndarray | None = None) -> NormStats:
    """Min / mean / max L2 norm, zero rows, and whether all norms are 1 ± 1e-3.

    ``rows`` (a boolean mask) restricts the figures to those rows; the matrix is read in
    blocks either way (a memory map by plain file reads), never copied whole."""
    lo, hi, total, zeros, far, count = np.inf, -np.inf, 0.0, 0, 0.0, 0
    step = rows_per_block(x.shape[1] * 8, budget_mib)
    for start, stop, block in row_blocks(x, step):
        if rows is not None:
            block = block[rows[start:stop]]
            if not len(block):
                continue
        norms = np.sqrt(squared_norms(np.asarray(block, dtype=np.float64)))
        lo, hi = min(lo, float(norms.min())), max(hi, float(norms.max()))
        total += float(norms.sum())
        zeros += int((norms == 0).sum())
        far = max(far, float(np.abs(norms - 1.0).max()))
        count += len(norms)
    return NormStats(min=lo, mean=total / max(count, 1), max=hi, zero_rows=zeros,
                     normalised=far <= NORMALISED_TOLERANCE)


def row_hashes(block: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes (``-0.0`` hashed as ``0.0``); equal rows, equal hashes."""
    rows = np.ascontiguousarray(block) + 0  # + 0 turns -0.0 into 0.0
    raw = rows.view(np.uint8).reshape(len(rows), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(raw), pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(raw).view(np.uint64)
    multipliers = np.asarray(np.random.default_rng(12345).integers(1, 2**63, words.shape[1], dtype=np.uint64))
    np.bitwise_or(multipliers, np.uint64(1), out=multipliers)
    with np.errstate(over="ignore"):
        h = np.asarray((words * multipliers[None, :]).sum(axis=1, dtype=np.uint64))
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x9E3779B97F4A7C15)
    return h


def exact_duplicates(x: np.ndarray, labels: np.ndarray | None = None, *, budget_mib: float = 32.0,
                     rows: np.ndarray | None = None) -> Duplicates:
    """Exact duplicate rows (equal bytes, ``-0.0`` equal to ``0.0``), in bounded memory.

    Pass 1 hashes the rows in blocks. Rows sharing a hash are then compared, in further
    passes over the file in blocks, with the first row of their hash group; the first
    rows kept for comparison fit ``budget_mib`` (more groups: more passes). Only rows of
    a hash group holding two different vectors (a 64-bit collision) are compared by
    copying them. Beyond the row blocks, memory is a few 8-byte words per row.
    ``rows`` (a boolean mask) restricts the search to those rows; row numbers in the
    result are the matrix's own.
    """
    n, dim = x.shape
    width = dim * x.dtype.itemsize
    step = rows_per_block(width * 3, budget_mib)
    hashes = np.empty(n, dtype=np.uint64)
    for start, stop, block in row_blocks(x, step):
        hashes[start:stop] = row_hashes(block)
    order = np.flatnonzero(rows) if rows is not None else np.arange(n)
    order = order[np.argsort(hashes[order], kind="stable")]  # by hash, ties by row
    sorted_hashes = hashes[order]
    del hashes
    starts_group = np.ones(len(order), dtype=bool)
    starts_group[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    del sorted_hashes
    group_of = np.cumsum(starts_group) - 1
    group_sizes = np.bincount(group_of)
    shared = group_sizes[group_of] > 1
    if not shared.any():
        return Duplicates(0, 0, 0 if labels is not None else None, None)
    candidates = order[shared]                      # sorted by hash group, then row
    group = np.cumsum(starts_group[shared]) - 1     # hash group 0..G-1 of each candidate
    del order, starts_group, group_of, shared
    first_of_group = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    representative = candidates[first_of_group]     # the smallest row of each group
    groups = len(first_of_group)
    group_of_row = np.full(n, -1, dtype=np.int64)
    group_of_row[candidates] = group
    differs = _differs_from_representative(x, group_of_row, representative, step, budget_mib)
    vector_group = group
    if differs.any():  # distinct rows with one hash: settle those groups by their bytes
        vector_group = _split_collisions(x, candidates, group, np.unique(group_of_row[differs]), groups)
    del group_of_row
    _, vector_group, sizes = np.unique(vector_group, return_inverse=True, return_counts=True)
    vector_group = vector_group.reshape(-1)
    repeated = np.flatnonzero(sizes > 1)
    conflicting = None
    if labels is not None:
        pairs = np.unique(np.stack([vector_group, np.asarray(labels)[candidates]], axis=1), axis=0)
        per_group = np.bincount(pairs[:, 0], minlength=len(sizes))
        conflicting = int((per_group[repeated] > 1).sum())
    example = None
    if len(repeated):
        first_row = np.full(len(sizes), np.iinfo(np.int64).max)
        np.minimum.at(first_row, vector_group, candidates)
        g = repeated[np.argmin(first_row[repeated])]
        members = np.sort(candidates[vector_group == g])
        example = (int(members[0]), int(members[1]))
    return Duplicates(rows=int(len(candidates) - len(sizes)), groups=int(len(repeated)),
                      conflicting_groups=conflicting, example=example)


def _canonical_bytes(block: np.ndarray) -> np.ndarray:
    """Rows as bytes, ``-0.0`` made ``0.0`` (the equality :func:`row_hashes` hashes)."""
    rows = np.ascontiguousarray(block) + 0
    return rows.view(np.uint8).reshape(len(rows), -1)


def _differs_from_representative(x: np.ndarray, group_of_row: np.ndarray, representative: np.ndarray,
                                 step: int, budget_mib: float) -> np.ndarray:
    """Row mask: rows whose bytes differ from their hash group's first row.

    Reads ``x`` in row blocks, once per batch of groups whose first rows fit the budget."""
    n = len(group_of_row)
    width = max(1, x.shape[1] * x.dtype.itemsize)
    per_pass = max(1, int(budget_mib * 2**20) // width)
    differs = np.zeros(n, dtype=bool)
    for g0 in range(0, len(representative), per_pass):
        g1 = min(len(representative), g0 + per_pass)
        kept = np.zeros((g1 - g0, width), dtype=np.uint8)
        for start, stop, block in row_blocks(x, step):
            g = group_of_row[start:stop]
            here = np.flatnonzero((g >= g0) & (g < g1))
            if not len(here):
                continue
            local = g[here] - g0
            raw = _canonical_bytes(np.asarray(block)[here])
            first = representative[g[here]] == start + here
            kept[local[first]] = raw[first]  # a group's first row comes before its other rows
            differs[start + here] = (raw != kept[local]).any(axis=1)
    return differs


def _split_collisions(x: np.ndarray, candidates: np.ndarray, group: np.ndarray, collided: np.ndarray,
                      groups: int) -> np.ndarray:
    """Group ids by exact bytes for the hash groups in ``collided``; other groups keep theirs."""
    out = group.copy()
    inside = np.flatnonzero(np.isin(group, collided))
    raw = _canonical_bytes(np.asarray(x[np.sort(candidates[inside])]))
    order = np.argsort(candidates[inside])
    keys = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, exact = np.unique(keys, return_inverse=True)
    out[inside[order]] = groups + exact.reshape(-1)
    return out


def label_stats(labels: np.ndarray, names: np.ndarray | None) -> LabelStats:
    sizes = class_sizes(labels)
    present = np.flatnonzero(sizes)
    similar, dissimilar = count_label_pairs(labels)
    shown = names[present] if names is not None else present
    return LabelStats(classes=len(present), names=shown, counts=sizes[present],
                      singleton_classes=int((sizes == 1).sum()), positive_pairs=similar, negative_pairs=dissimilar)


def all_pair_distances(x: np.ndarray, labels: np.ndarray, *, budget_mib: float = DEFAULT_BUDGET_MIB
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(positive, negative)`` distances of every pair ``i < j``, float64, in row blocks."""
    x64 = np.asarray(x, dtype=np.float64)
    x64 = x64 - x64.mean(axis=0)  # centring shrinks the norms: less cancellation in the expansion
    sq = squared_norms(x64)
    n = len(x64)
    positive: list[np.ndarray] = []
    negative: list[np.ndarray] = []
    step = rows_per_block(n * 8 * 3, budget_mib)
    for start, stop in blocks(n, step):
        d = block_distances(x64[start:stop], x64[start:], rows_sq=sq[start:stop], columns_sq=sq[start:])
        upper = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        same = labels[start:stop, None] == labels[None, start:]
        positive.append(d[upper & same])
        negative.append(d[upper & ~same])
    return np.concatenate(positive), np.concatenate(negative)


def sampled_pair_distances(x: np.ndarray, labels: np.ndarray, sample: int, seed: int,
                           *, budget_mib: float = DEFAULT_BUDGET_MIB, rows: np.ndarray | None = None,
                           ) -> tuple[np.ndarray, np.ndarray, bool]:
    """``sample`` positive and negative pairs drawn uniformly with replacement; all positive
    pairs when there are at most ``sample``. Returns ``(positive, negative, positives_exact)``.

    With ``rows`` (row numbers of ``x``, one per label), pair ``(i, j)`` is measured on
    ``x[rows[i]]`` and ``x[rows[j]]``: a subset without a copy of it."""
    rng = np.random.default_rng(seed)
    members = members_by_label(labels)
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    per_class = sizes * (sizes - 1) // 2
    total_positive = int(per_class.sum())
    if total_positive <= sample:
        parts = [np.stack(np.triu_indices(len(m), 1)) for m in members if len(m) > 1]
        owners = [m for m in members if len(m) > 1]
        pi = np.concatenate([m[p[0]] for m, p in zip(owners, parts)]) if parts else np.empty(0, np.int64)
        pj = np.concatenate([m[p[1]] for m, p in zip(owners, parts)]) if parts else np.empty(0, np.int64)
        positives_exact = True
    else:
        classes = rng.choice(len(members), size=sample, p=per_class / total_positive)
        a = rng.integers(0, sizes[classes])
        b = rng.integers(0, sizes[classes] - 1)
        b = b + (b >= a)  # a second, distinct member
        order = np.concatenate(members)
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pi, pj = order[first[classes] + a], order[first[classes] + b]
        positives_exact = False
    ni_parts, nj_parts, have = [], [], 0
    n = len(labels)
    while have < sample:
        i = rng.integers(0, n, 2 * sample)
        j = rng.integers(0, n, 2 * sample)
        keep = labels[i] != labels[j]
        ni_parts.append(i[keep])
        nj_parts.append(j[keep])
        have += int(keep.sum())
        if have == 0 and len(ni_parts) > 50:
            break
    ni = np.concatenate(ni_parts)[:sample]
    nj = np.concatenate(nj_parts)[:sample]
    if rows is not None:
        pi, pj, ni, nj = rows[pi], rows[pj], rows[ni], rows[nj]
    positive = paired_distances(x, pi, pj, budget_mib=budget_mib)
    negative = paired_distances(x, ni, nj, budget_mib=budget_mib)
    return positive, negative, positives_exact


def distribution(values: np.ndarray) -> Distribution:
    if len(values) == 0:
        nan = float("nan")
        return Distribution(0, nan, nan, nan, dict.fromkeys(QUANTILES, nan))
    qs = np.quantile(values, QUANTILES)
    return Distribution(count=len(values), mean=float(values.mean()), min=float(values.min()),
                        max=float(values.max()), quantiles={q: float(v) for q, v in zip(QUANTILES, qs)})


def margin_errors(positive_sorted: np.ndarray, negative_sorted: np.ndarray, margins: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(negatives_inside, positives_beyond)`` at each margin: fractions with D < m and D > m."""
    inside = np.searchsorted(negative_sorted, margins, side="left") / max(1, len(negative_sorted))
    beyond = (len(positive_sorted) - np.searchsorted(positive_sorted, margins, side="right")) / max(
        1, len(positive_sorted))
    return inside, beyond


def suggest_margin(positive: np.ndarray, negative: np.ndarray) -> MarginSuggestion:
    """The margin minimising ``negatives_inside + positives_beyond`` (see the module docstring).

    When every pair, positive or negative, lies at the same distance (e.g. all rows
    identical) no margin separates the kinds: the margin and its fractions are NaN.

    >>> s = suggest_margin(np.array([0.1, 0.5, 1.0]), np.array([2.0, 2.5, 3.0]))
    >>> s.margin, s.negatives_inside, s.positives_beyond
    (1.5, 0.0, 0.0)
    """
    pos = np.sort(positive)
    neg = np.sort(negative)
    values = np.unique(np.concatenate([pos, neg]))
    rule = "minimise negatives_inside(m) + positives_beyond(m), each a fraction of its own kind"
    if len(values) == 1:
        # m = that distance would count every pair neither inside nor beyond (0 % + 0 %) and
        # read as a perfect separation; the kinds are in fact indistinguishable.
        grid = np.linspace(0.0, float(values[0]) * 1.05 if values[0] > 0 else 1.0, 101)
        g_inside, g_beyond = margin_errors(pos, neg, grid)
        nan = float("nan")
        return MarginSuggestion(
            margin=nan, negatives_inside=nan, positives_beyond=nan, rule=rule,
            reasoning=(f"every positive and every negative pair is at distance {values[0]:.4g} (e.g. identical "
                       "rows): no margin separates the kinds, so none is suggested",),
            candidates=(), curve={"margin": grid, "negatives_inside": g_inside, "positives_beyond": g_beyond})
    # Between consecutive distinct distances both fractions are constant: test the midpoints.
    lows = np.concatenate([[values[0]], values])
    highs = np.concatenate([values, [values[-1]]])
    inside, beyond = margin_errors(pos, neg, (lows + highs) / 2)
    cost = inside + beyond
    best = np.flatnonzero(np.isclose(cost, cost.min(), rtol=0, atol=1e-12))
    # The longest run of consecutive minimisers; its midpoint.
    runs = np.split(best, np.flatnonzero(np.diff(best) != 1) + 1)
    widths = [highs[r[-1]] - lows[r[0]] for r in runs]
    run = runs[int(np.argmax(widths))]
    margin = float((lows[run[0]] + highs[run[-1]]) / 2)
    m_inside, m_beyond = (float(v[0]) for v in margin_errors(pos, neg, np.array([margin])))
    grid = np.linspace(0.0, float(values[-1]) * 1.05 if values[-1] > 0 else 1.0, 101)
    g_inside, g_beyond = margin_errors(pos, neg, grid)
    picks = sorted({float(f"{v:.3g}") for v in (
        *np.quantile(pos, (0.5, 0.95, 0.99)), *np.quantile(neg, (0.01, 0.05, 0.25)))} - {float(f"{margin:.3g}")})
    picks = sorted([*picks, margin])
    c_inside, c_beyond = margin_errors(pos, neg, np.array(picks))
    candidates = tuple(MarginPoint(m, float(a), float(b)) for m, a, b in zip(picks, c_inside, c_beyond))
    reasoning = [
        f"at m = {margin:.4g}, {100 * m_inside:.2f} % of negative pairs are still inside the margin "
        f"(D < m: the loss still pushes them) and {100 * m_beyond:.2f} % of positive pairs lie beyond it (D > m)",
        "each kind counts as a fraction of itself, so rare positives weigh as much as the many negatives",
    ]
    if m_inside == 0 and m_beyond == 0 and pos[-1] >= neg[0]:
        reasoning.append(
            f"positive and negative pairs meet at D = {margin:.4g}: pairs at exactly m count neither as inside "
            "nor as beyond, so the kinds touch there rather than being separated")
    elif m_inside == 0 and m_beyond == 0:
        reasoning.append(
            f"the kinds are separated: every positive is within {pos[-1]:.4g} and every negative beyond "
            f"{neg[0]:.4g}; m is the middle of that gap (negatives get no gradient until they come closer)")
    return MarginSuggestion(margin=margin, negatives_inside=m_inside, positives_beyond=m_beyond, rule=rule,
                            reasoning=tuple(reasoning), candidates=candidates,
                            curve={"margin": grid, "negatives_inside": g_inside, "positives_beyond": g_beyond})


def ranking_error(positive: np.ndarray, negative_sorted: np.ndarray) -> float:
    """``P(D_neg < D_pos) + ½·P(D_neg = D_pos)`` over all (positive, negative) combinations."""
    below = np.searchsorted(negative_sorted, positive, side="left").astype(np.float64)
    equal = np.searchsorted(negative_sorted, positive, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(positive) * len(negative_sorted)))


def pair_distances(x: np.ndarray, labels: np.ndarray, *, exact_pairs: int = DEFAULT_EXACT_PAIRS,
                   sample: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED, bins: int = DEFAULT_BINS,
                   budget_mib: float = DEFAULT_BUDGET_MIB, rows: np.ndarray | None = None) -> PairDistances | None:
    """Distance distributions of positive and negative pairs, their overlap and a margin;
    None when either kind has no pair. ``rows``: measure the rows ``x[rows]`` (one label
    each) without copying them, except for the exact all-pairs path."""
    similar, dissimilar = count_label_pairs(labels)
    if similar == 0 or dissimilar == 0:
        return None
    if similar + dissimilar <= exact_pairs:
        subset = np.asarray(x[rows]) if rows is not None else x
        positive, negative = all_pair_distances(subset, labels, budget_mib=budget_mib)
        method, used_seed, used_sample = "exact", None, None
    else:
        positive, negative, _ = sampled_pair_distances(x, labels, sample, seed, budget_mib=budget_mib, rows=rows)
        method, used_seed, used_sample = "sampled", seed, sample
    neg_sorted = np.sort(negative)
    low = min(float(positive.min()), float(negative.min()))
    high = max(float(positive.max()), float(negative.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    pos_counts = np.histogram(positive, edges)[0]
    neg_counts = np.histogram(negative, edges)[0]
    overlap = float(np.minimum(pos_counts / len(positive), neg_counts / len(negative)).sum())
    return PairDistances(
        method=method, seed=used_seed, sample=used_sample, positive=distribution(positive),
        negative=distribution(negative), edges=edges, positive_counts=pos_counts, negative_counts=neg_counts,
        overlap=overlap, ranking_error=ranking_error(positive, neg_sorted),
        margin=suggest_margin(positive, neg_sorted),
    )


def inspect_embeddings(
    loaded: LoadedEmbeddings,
    *,
    parts: tuple[str, ...] = PARTS,
    normalize: bool = False,
    exact_pairs: int = DEFAULT_EXACT_PAIRS,
    sample: int = DEFAULT_SAMPLE,
    seed: int = DEFAULT_SEED,
    bins: int = DEFAULT_BINS,
    budget_mib: float = DEFAULT_BUDGET_MIB,
) -> Inspection:
    """Inspect an embedding set; only ``parts`` (of norms, duplicates, labels, distances) are computed.

    Norms, duplicates and distances use the finite rows only (NaN/Inf rows are counted).
    With ``normalize``, duplicates and distances are measured on L2-normalised rows.
    """
    dataset = loaded.dataset
    notes: list[str] = []
    x = dataset.embeddings
    labels = dataset.labels
    finite: np.ndarray | None = None
    if loaded.nonfinite_rows:
        # Norms and duplicates skip the non-finite rows block by block; only what needs
        # the finite rows as one matrix (normalised rows, pair distances) gets a copy.
        finite = loaded.finite
        notes.append(f"{loaded.nonfinite_rows:,} rows with NaN or Inf are left out of every other figure")
    has_rows = loaded.nonfinite_rows < dataset.rows
    norms = norm_stats(x, budget_mib=budget_mib, rows=finite) if "norms" in parts and has_rows else None
    # Normalised rows are a new matrix anyway: only then are the finite rows copied first.
    needs_matrix = has_rows and normalize and bool({"duplicates", "distances"} & set(parts))
    row_labels = labels  # one per row of x (what exact_duplicates reads)
    if finite is not None and needs_matrix:
        keep = np.flatnonzero(finite)
        x, finite = np.asarray(x[keep]), None
        labels = row_labels = labels[keep] if labels is not None else None
    elif finite is not None and labels is not None:
        labels = labels[finite]
    work = l2_normalized(x) if normalize and needs_matrix else x
    duplicates = None
    if "duplicates" in parts and has_rows:
        duplicates = exact_duplicates(work, row_labels, budget_mib=budget_mib, rows=finite)
    label_info = distances = None
    if labels is None and {"labels", "distances"} & set(parts):
        notes.append("no labels: label counts and pair distances need labels (--labels FILE)")
    if labels is not None and {"labels", "distances"} & set(parts):
        label_info = label_stats(labels, dataset.label_names)
        if "distances" in parts:
            distances = pair_distances(work, labels, exact_pairs=exact_pairs, sample=sample, seed=seed,
                                       bins=bins, budget_mib=budget_mib,
                                       rows=np.flatnonzero(finite) if finite is not None else None)
            if distances is None:
                notes.append("pair distances need at least one positive and one negative pair")
    return Inspection(
        source=dataset.source, rows=dataset.rows, dim=dataset.dim, dtype=str(dataset.embeddings.dtype),
        nan_rows=loaded.nan_rows, inf_rows=loaded.inf_rows, normalize=normalize, norms=norms,
        duplicates=duplicates, labels=label_info, distances=distances, notes=tuple(notes), shards=dataset.shards,
    )
