"""The symmetric schedule of self-joins against the one-sided scan and loop oracles.

Integer-valued rows keep every product exact (the Euclidean centre sits on a power-of-two
grid), so there the two schedules must agree bit for bit, ties and duplicates included.
On general float data BLAS rounds a product differently at another tile position, so the
two may only differ between keys within that rounding of each other.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.execution import Execution
from embedkit.metrics import retrieval_metrics
from embedkit.mining import blocked
from embedkit.mining.keys import TooMany, positive_bands, prepare
from embedkit.mining.symmetric import symmetric_topk
from embedkit.tiles import symmetric_block, symmetric_tasks, symmetric_tile_count

#: A budget that makes 32-row symmetric tiles and several super-tiles on a few hundred rows.
TINY = 0.05


def integer_data(n: int, d: int, seed: int, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (n, d)).astype(np.float32)
    x[7:12] = x[3]  # duplicates: equal keys, ties go to the smaller row
    x += 1000.0  # a large common offset: the centre must take it off exactly
    return x, rng.integers(0, classes, n)


def both(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """``fn`` on the symmetric schedule and one-sided."""
    sym = fn(*args, symmetric=True, **kwargs)
    one = fn(*args, symmetric=False, **kwargs)
    return sym, one


def test_schedule_covers_the_upper_triangle_once() -> None:
    for n, block in [(1, 16), (100, 16), (1000, 32), (1037, 64)]:
        seen = np.zeros((n, n), dtype=int)
        tasks = symmetric_tasks(n, block)
        for r0, r1, c0, c1 in tasks:
            assert r0 <= c0 and (r0 == c0 or r1 <= c0)
            for i0 in range(r0, r1, block):
                for j0 in range(max(i0, c0), c1, block):
                    i1, j1 = min(r1, i0 + block), min(c1, j0 + block)
                    tile = np.zeros((n, n), dtype=bool)
                    tile[i0:i1, j0:j1] = True
                    if i0 == j0:
                        tile &= np.triu(np.ones((n, n), dtype=bool), 1)
                    seen += tile
        assert (seen == np.triu(np.ones((n, n), dtype=int), 1)).all()
        assert sum(symmetric_tile_count(t, block) for t in tasks) >= len(tasks)
    assert symmetric_block(4, budget_mib=TINY) == 32


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 3, 12])
def test_nearest_negatives_same_as_one_sided(metric: str, k: int) -> None:
    x, labels = integer_data(437, 6, seed=k)
    prep = prepare(x, metric)  # type: ignore[arg-type]
    anchors = np.arange(len(x))
    sym, one = both(blocked.nearest_negatives, prep, labels, anchors, k, execution=Execution(budget_mib=TINY))
    assert blocked.symmetric_pays(len(anchors), len(x))
    np.testing.assert_array_equal(sym[1], one[1])
    np.testing.assert_array_equal(sym[0], one[0])
    if metric == "euclidean":  # exact keys: the loop oracle, ties to the smaller row
        for a in range(0, len(x), 37):
            d = ((x.astype(np.float64) - x[a]) ** 2).sum(axis=1)
            negatives = np.flatnonzero(labels != labels[a])
            want = negatives[np.lexsort((negatives, d[negatives]))][:k]
            np.testing.assert_array_equal(sym[1][a, :len(want)], want)


def test_nearest_negatives_subset_of_anchors() -> None:
    """More than half the rows as anchors, some twice: symmetric, and as one-sided."""
    x, labels = integer_data(300, 4, seed=3)
    prep = prepare(x, "euclidean")
    anchors = np.sort(np.random.default_rng(0).choice(300, 220))
    one = blocked.nearest_negatives(prep, labels, anchors, 4, symmetric=False, execution=Execution(budget_mib=TINY))
    sym = blocked.nearest_negatives(prep, labels, anchors, 4, symmetric=True, execution=Execution(budget_mib=TINY))
    for got, want in zip(sym[:2], one[:2]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("band", ["semi-hard", "easy", "farther"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_bands_same_as_one_sided(band: str, metric: str) -> None:
    x, labels = integer_data(389, 5, seed=11, classes=4)
    prep = prepare(x, metric)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    anchors = np.repeat(np.arange(len(x)), 2)  # two positives per anchor: two slots
    positives = np.array([rng.choice(np.flatnonzero(labels == labels[a])) for a in anchors])
    slots, _ = positive_bands(prep, anchors, positives, band, margin=1.5)  # type: ignore[arg-type]
    sym, one = both(blocked.band_closest, prep, labels, slots, execution=Execution(budget_mib=TINY))
    np.testing.assert_array_equal(sym[1], one[1])
    np.testing.assert_array_equal(sym[0], one[0])
    sym, one = both(blocked.band_all, prep, labels, slots, max_items=10**7, execution=Execution(budget_mib=TINY))
    for got, want in zip(sym, one):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TooMany):
        blocked.band_all(prep, labels, slots, max_items=len(sym[0]) - 1, execution=Execution(budget_mib=TINY))


def test_float_data_differs_only_within_rounding() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((700, 24)).astype(np.float32)
    labels = rng.integers(0, 6, len(x))
    prep = prepare(x, "euclidean")
    sym, one = both(blocked.nearest_negatives, prep, labels, np.arange(len(x)), 5, execution=Execution(budget_mib=TINY))
    exact = lambda a, b: ((x[a].astype(np.float64) - x[b].astype(np.float64)) ** 2).sum(axis=-1)  # noqa: E731
    a = np.repeat(np.arange(len(x))[:, None], 5, axis=1)
    np.testing.assert_allclose(exact(a, sym[1]), exact(a, one[1]), rtol=1e-5)
    assert (sym[1] == one[1]).mean() > 0.99
    np.testing.assert_allclose(sym[0], one[0], rtol=1e-5)


def test_same_rows_whatever_the_workers() -> None:
    x, labels = integer_data(500, 5, seed=2)
    x += np.random.default_rng(0).standard_normal(x.shape).astype(np.float32) * 0.3  # inexact products too
    prep = prepare(x, "euclidean")
    on = np.ones(len(x), dtype=bool)
    runs = [symmetric_topk(prep, labels, on, 9, execution=Execution.local(w, budget_mib=TINY)) for w in (1, 2, 3)]
    for keys, ids in runs[1:]:
        np.testing.assert_array_equal(ids, runs[0][1])
        np.testing.assert_array_equal(keys, runs[0][0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 90), d=st.integers(1, 4), k=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_plain_topk_matches_the_loop_oracle(n: int, d: int, k: int, seed: int) -> None:
    """Distinct codes: the k nearest other rows, (distance, row) order; small values give ties."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, d)).astype(np.float32)
    on = rng.random(n) < 0.8
    keys, ids = symmetric_topk(prepare(x, "euclidean"), np.arange(n), on, k, execution=Execution(budget_mib=0.002))
    for a in range(n):
        if not on[a]:
            assert (ids[a] == -1).all()
            continue
        d2 = ((x.astype(np.float64) - x[a]) ** 2).sum(axis=1)
        others = np.delete(np.arange(n), a)
        want = others[np.lexsort((others, d2[others]))][:k]
        np.testing.assert_array_equal(ids[a, :len(want)], want)
        np.testing.assert_array_equal(keys[a, :len(want)], d2[want])
        assert (ids[a, len(want):] == -1).all()


def test_eval_self_join_matches_faiss_search() -> None:
    """eval's symmetric label k-NN gives the figures of the FAISS search of the same rows as
    separate queries (integer data: both exact; the self match is dropped by the search)."""
    x, labels = integer_data(600, 6, seed=9, classes=12)
    x = np.unique(x, axis=0)[:500]  # no duplicates: a query's own copy would be a neighbour
    labels = labels[: len(x)]
    sym = retrieval_metrics(x, labels, ks=(1, 5), execution=Execution(budget_mib=TINY))
    faiss_like = retrieval_metrics(x, labels, queries=x, query_labels=labels, ks=(1, 5))
    assert sym.search_k == faiss_like.search_k - 1 or sym.search_k == faiss_like.search_k
    oracle = _metrics_oracle(x, labels)
    assert sym.precision_at_1 == pytest.approx(oracle["precision_at_1"], abs=1e-12)
    assert sym.map_at_r == pytest.approx(oracle["map_at_r"], abs=1e-12)
    assert sym.r_precision == pytest.approx(oracle["r_precision"], abs=1e-12)


def _metrics_oracle(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    x64 = x.astype(np.float64)
    p1, rp, mapr, count = 0.0, 0.0, 0.0, 0
    for a in range(len(x)):
        others = np.delete(np.arange(len(x)), a)
        d2 = ((x64[others] - x64[a]) ** 2).sum(axis=1)
        ranked = others[np.lexsort((others, d2))]
        r = int((labels[others] == labels[a]).sum())
        if r == 0:
            continue
        rel = labels[ranked[:r]] == labels[a]
        p1 += float(labels[ranked[0]] == labels[a])
        rp += rel.sum() / r
        mapr += (rel * np.cumsum(rel) / np.arange(1, r + 1)).sum() / r
        count += 1
    return {"precision_at_1": p1 / count, "r_precision": rp / count, "map_at_r": mapr / count}
