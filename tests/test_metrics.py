"""Retrieval metrics against a slow loop oracle: random data, ties, duplicate rows, lone labels, gallery splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.dataset import Dataset
from embedkit.errors import InputError, OptionError
from embedkit.execution import Execution
from embedkit.metrics import evaluate_retrieval, query_scores, retrieval_metrics
from tests.conftest import clustered


def oracle(x, labels, *, queries=None, query_labels=None, ks=(1, 5, 10), metric="euclidean"):
    """One query at a time: rank every other reference row by (distance, row id), then
    apply pytorch-metric-learning's definitions literally."""
    same = queries is None
    ref = np.asarray(x, dtype=np.float64)
    qs = ref if same else np.asarray(queries, dtype=np.float64)
    qlab = labels if same else query_labels
    if metric == "cosine":
        def unit(a):
            n = np.linalg.norm(a, axis=1, keepdims=True)
            return np.divide(a, n, out=np.zeros_like(a), where=n > 0)
        ref, qs = unit(ref), unit(qs)
    scores = {"precision_at_1": [], "r_precision": [], "map_at_r": [], **{f"recall_at_{k}": [] for k in ks}}
    for i in range(len(qs)):
        candidates = [j for j in range(len(ref)) if not (same and j == i)]
        if metric == "euclidean":
            key = {j: float(((qs[i] - ref[j]) ** 2).sum()) for j in candidates}
        else:
            key = {j: -float(qs[i] @ ref[j]) for j in candidates}
        order = sorted(candidates, key=lambda j: (key[j], j))
        rel = [bool(labels[j] == qlab[i]) for j in order]
        big_r = sum(rel)
        if big_r == 0:
            continue
        scores["precision_at_1"].append(float(rel[0]))
        scores["r_precision"].append(sum(rel[:big_r]) / big_r)
        scores["map_at_r"].append(sum(sum(rel[: t + 1]) / (t + 1) for t in range(big_r) if rel[t]) / big_r)
        for k in ks:
            scores[f"recall_at_{k}"].append(float(any(rel[:k])))
    return {name: float(np.mean(v)) for name, v in scores.items()}, len(scores["precision_at_1"])


def assert_matches(result, expected, evaluated):
    assert result.evaluated == evaluated
    for name, value in expected.items():
        assert result.figures[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_random_clusters_match_oracle(dtype, metric):
    x, labels = clustered(60, 8, 5, seed=3, spread=1.2, dtype=dtype)
    result = retrieval_metrics(x, labels, ks=(1, 3, 7), metric=metric)
    expected, evaluated = oracle(x, labels, ks=(1, 3, 7), metric=metric)
    assert_matches(result, expected, evaluated)
    assert 0 < result.precision_at_1 < 1  # the data is hard enough for the test to mean something


def test_ties_on_integer_grid_follow_row_id_order():
    # Small integer coordinates: many exactly equal distances, computed exactly by FAISS.
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (50, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    expected, evaluated = oracle(x, labels, ks=(1, 2, 5))
    assert_matches(retrieval_metrics(x, labels, ks=(1, 2, 5)), expected, evaluated)


def test_ties_decide_the_value_by_row_id():
    # Query 0 has two neighbours at the same distance 1: row 1 (other label) and row 2 (same label).
    x = np.array([[0.0], [1.0], [-1.0], [10.0]], dtype=np.float32)
    labels = np.array([0, 1, 0, 1])
    result = retrieval_metrics(x, labels, ks=(1,), per_class=True)
    # Query 0: R=1, nearest by (distance, id) is row 1 -> miss. Query 2: nearest row 0 -> hit.
    # Query 1: neighbours 0 (d=1), 2 (d=2), 3 (d=9): R=1 -> miss. Query 3: nearest 1 -> hit.
    assert result.precision_at_1 == 0.5
    assert result.per_class["precision_at_1"].tolist() == [0.5, 0.5]


def test_duplicate_rows():
    x, labels = clustered(30, 4, 3, seed=5, spread=1.5)
    x = np.concatenate([x, x[:10], x[:5]])  # exact duplicates, some with another label
    labels = np.concatenate([labels, labels[:10], (labels[:5] + 1) % 3])
    expected, evaluated = oracle(x, labels)
    assert_matches(retrieval_metrics(x, labels), expected, evaluated)


def test_every_row_identical_is_pure_tie_order():
    x = np.zeros((6, 2), dtype=np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])
    expected, evaluated = oracle(x, labels, ks=(1, 2))
    result = retrieval_metrics(x, labels, ks=(1, 2))
    assert_matches(result, expected, evaluated)


def test_lone_queries_are_skipped():
    x, labels = clustered(40, 6, 4, seed=2)
    labels = labels.copy()
    labels[[0, 1]] = [10, 11]  # two labels with a single row each
    result = retrieval_metrics(x, labels)
    assert result.lone == 2 and result.evaluated == 38
    expected, evaluated = oracle(x, labels)
    assert_matches(result, expected, evaluated)


def test_search_width_is_the_largest_class():
    x, labels = clustered(50, 4, 3, seed=4)
    result = retrieval_metrics(x, labels, ks=(1,))
    assert result.search_k == np.bincount(labels).max()
    assert retrieval_metrics(x, labels, ks=(1, 45)).search_k == 45


def test_gallery_split_matches_oracle(dtype):
    ref, ref_labels = clustered(40, 5, 4, seed=8, spread=1.0, dtype=dtype)
    rng = np.random.default_rng(9)
    queries = (ref[:15] + 0.8 * rng.standard_normal((15, 5))).astype(dtype)
    query_labels = ref_labels[:15].copy()
    query_labels[0] = 7  # absent from the reference: a lone query
    result = retrieval_metrics(ref, ref_labels, queries=queries, query_labels=query_labels)
    expected, evaluated = oracle(ref, ref_labels, queries=queries, query_labels=query_labels)
    assert not result.same_source and result.lone == 1
    assert_matches(result, expected, evaluated)


def test_gallery_split_keeps_an_identical_query():
    # A query equal to a reference row is NOT excluded in a gallery split.
    ref = np.array([[0.0], [5.0], [5.1]], dtype=np.float32)
    result = retrieval_metrics(ref, np.array([0, 1, 1]), queries=ref[:1].copy(), query_labels=np.array([0]), ks=(1,))
    assert result.precision_at_1 == 1.0 and result.map_at_r == 1.0


def test_gallery_labels_match_by_value_across_files():
    ref = Dataset(np.array([[0.0], [0.1], [5.0], [5.1]], dtype=np.float32), "ref",
                  labels=np.array([0, 0, 1, 1]), label_names=np.array(["cat", "dog"]))
    qry = Dataset(np.array([[5.05], [0.05]], dtype=np.float32), "q",
                  labels=np.array([0, 1]), label_names=np.array(["dog", "zebra"]))
    result = evaluate_retrieval(ref, qry, ks=(1,), per_class=True)
    assert result.evaluated == 1 and result.lone == 1  # zebra has no reference
    assert result.precision_at_1 == 1.0
    table = dict(zip(result.label_names[result.per_class["label"]], result.per_class["evaluated"]))
    assert table == {"dog": 1, "zebra": 0}


def test_per_class_averages_back_to_the_global_value():
    x, labels = clustered(80, 6, 5, seed=11, spread=1.3)
    result = retrieval_metrics(x, labels, per_class=True)
    table = result.per_class
    weights = table["evaluated"]
    for name in ("precision_at_1", "r_precision", "map_at_r", "recall_at_5"):
        assert np.sum(table[name] * weights) / weights.sum() == pytest.approx(result.figures[name])


def test_blocked_queries_equal_one_block():
    x, labels = clustered(120, 8, 6, seed=12, spread=1.2)
    whole = retrieval_metrics(x, labels)
    tiny = retrieval_metrics(x, labels, execution=Execution(budget_mib=0.001))  # one query per block
    assert tiny.figures == pytest.approx(whole.figures, abs=1e-12)


def test_query_scores_hand_computed():
    # rel = [1, 0, 1, 1], R = 3: r_precision = 2/3; map_at_r = (1/1 + 0 + 2/3) / 3.
    s = query_scores(np.array([[True, False, True, True]]), np.array([3]), (1, 2, 4))
    assert s["r_precision"][0] == pytest.approx(2 / 3)
    assert s["map_at_r"][0] == pytest.approx((1 + 2 / 3) / 3)
    assert s["recall_at_1"][0] == 1.0


def test_no_evaluable_query_is_an_input_error():
    with pytest.raises(InputError, match="every label occurs once"):
        retrieval_metrics(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))


def test_bad_k_is_an_option_error():
    with pytest.raises(OptionError):
        retrieval_metrics(np.eye(3, dtype=np.float32), np.array([0, 0, 1]), ks=(0,))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.integers(0, 2**31 - 1),
    rows=st.integers(3, 25),
    classes=st.integers(1, 5),
)
def test_invariants_and_oracle_on_tied_integer_data(data, rows, classes):
    rng = np.random.default_rng(data)
    x = rng.integers(-2, 3, (rows, 2)).astype(np.float32)
    labels = rng.integers(0, classes, rows)
    if np.bincount(labels).max() < 2:
        return
    result = retrieval_metrics(x, labels, ks=(1, 2, 3, 100))
    f = result.figures
    for value in f.values():
        assert 0.0 <= value <= 1.0
    assert f["map_at_r"] <= f["r_precision"] + 1e-12  # P(i) <= 1 term by term
    assert f["recall_at_1"] == f["precision_at_1"]
    assert f["recall_at_1"] <= f["recall_at_2"] <= f["recall_at_3"] <= f["recall_at_100"]
    assert f["recall_at_100"] == 1.0  # every evaluated query has a same-label row somewhere
    expected, evaluated = oracle(x, labels, ks=(1, 2, 3, 100))
    assert_matches(result, expected, evaluated)
