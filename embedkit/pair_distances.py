"""Positive and negative pair distances, their overlap, and a suggested contrastive margin.

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

from embedkit.choices import DEFAULT_BINS, DEFAULT_EXACT_PAIRS, DEFAULT_SAMPLE, DEFAULT_SEED
from embedkit.chunking import DEFAULT_BUDGET_MIB, blocks, rows_per_block
from embedkit.distances import block_distances, paired_distances, squared_norms
from embedkit.pairs import count_label_pairs, members_by_label

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


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
