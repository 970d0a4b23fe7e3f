"""The large-k path of the symmetric label k-NN (eval's search width is the largest class):
filtered tiles feeding buffered selections, against the heap path and loop oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.execution import Execution
from embedkit.mining import symmetric
from embedkit.mining.keys import prepare
from embedkit.mining.symmetric import symmetric_topk
from embedkit.sym_kernels import DENSE_K
from embedkit.sym_select import select_smallest, sort_rows

#: Budgets giving 32-row tiles over several super-tiles, and one tile per super-tile.
BUDGETS = (0.05, 0.5)


def heap_path(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """The same scan through the per-anchor heaps (the small-k path)."""
    with monkeypatch.context() as m:
        m.setattr(symmetric, "DENSE_K", 10**9)
        return symmetric_topk(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("k", [DENSE_K + 1, 40])
def test_same_rows_and_keys_as_the_heap_path(monkeypatch: pytest.MonkeyPatch, budget: float, k: int) -> None:
    """Float data (inexact products): both paths read the same tiles, so they must agree bit
    for bit, with labels (negatives only) and with distinct codes, some anchors off."""
    rng = np.random.default_rng(k)
    x = rng.standard_normal((1500, 16)).astype(np.float32)
    labels = rng.integers(0, 7, len(x))
    on = rng.random(len(x)) < 0.9
    prep = prepare(x, "euclidean")
    for codes in (labels, np.arange(len(x))):
        want = heap_path(monkeypatch, prep, codes, on, k, execution=Execution(budget_mib=budget))
        got = symmetric_topk(prep, codes, on, k, execution=Execution(budget_mib=budget))
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])


def test_loop_oracle_with_ties_and_duplicates() -> None:
    """Integer-valued rows (exact keys, many ties, duplicate rows): the k nearest rows with
    another label, in (distance, row) order."""
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (400, 3)).astype(np.float32)
    x[10:30] = x[5]
    labels = rng.integers(0, 4, len(x))
    k = 25
    keys, ids = symmetric_topk(prepare(x, "euclidean"), labels, np.ones(len(x), dtype=bool), k,
                               execution=Execution(budget_mib=0.05))
    x64 = x.astype(np.float64)
    for a in range(len(x)):
        others = np.flatnonzero(labels != labels[a])
        d2 = ((x64[others] - x64[a]) ** 2).sum(axis=1)
        order = np.lexsort((others, d2))[:k]
        np.testing.assert_array_equal(ids[a], others[order])
        np.testing.assert_array_equal(keys[a], d2[order])


def test_huge_terms_take_the_unfiltered_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows so large that their terms pass 1e30: every pair is marked, the exact test alone
    decides; same answer as the heap path."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((300, 4)) * 1e15).astype(np.float32)
    x[::7] *= 100.0
    prep = prepare(x, "euclidean")
    on = np.ones(len(x), dtype=bool)
    assert prep.terms.max() >= 1e30
    want = heap_path(monkeypatch, prep, np.arange(len(x)), on, 12, execution=Execution(budget_mib=0.05))
    got = symmetric_topk(prep, np.arange(len(x)), on, 12, execution=Execution(budget_mib=0.05))
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_same_rows_whatever_the_workers_and_cosine() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    prep = prepare(x, "cosine")
    on = np.ones(len(x), dtype=bool)
    runs = [symmetric_topk(prep, np.arange(len(x)), on, 30, execution=Execution.local(w, budget_mib=0.05))
            for w in (1, 2)]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 80), seed=st.integers(0, 2**16), data=st.data())
def test_select_smallest_keeps_the_t_smallest(m: int, seed: int, data: st.DataObject) -> None:
    t = data.draw(st.integers(1, m))
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 5, m).astype(np.float64)  # many equal keys: the row breaks ties
    keys[rng.random(m) < 0.1] = np.inf
    ids = rng.permutation(10 * m)[:m].astype(np.int64)
    k2, i2 = keys.copy(), ids.copy()
    select_smallest(k2, i2, m, t)
    order = np.lexsort((ids, keys))
    assert sorted(zip(k2.tolist(), i2.tolist())) == sorted(zip(keys.tolist(), ids.tolist()))
    assert set(i2[:t].tolist()) == set(ids[order[:t]].tolist())
    assert (k2[t - 1], i2[t - 1]) == (keys[order[t - 1]], ids[order[t - 1]])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 6), m=st.integers(1, 120), seed=st.integers(0, 2**16))
def test_sort_rows_is_the_lexsort(rows: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 6, (rows, m)).astype(np.float64)
    keys[rng.random((rows, m)) < 0.2] = np.inf
    ids = np.argsort(rng.random((rows, m)), axis=1).astype(np.int64) * 3
    order = np.lexsort((ids, keys), axis=1)
    k2, i2 = keys.copy(), ids.copy()
    sort_rows(k2, i2)
    np.testing.assert_array_equal(k2, np.take_along_axis(keys, order, axis=1))
    np.testing.assert_array_equal(i2, np.take_along_axis(ids, order, axis=1))
