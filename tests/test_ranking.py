"""Exact blocked query -> corpus top-k against a brute-force oracle: metrics, ties, padding, blocks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedkit.execution import Execution
from embedkit.ranking import top_k


def oracle(queries: np.ndarray, corpus: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Score every pair in float64, sort each query by (score, row) with a Python sort."""
    q = queries.astype(np.float64)
    c = corpus.astype(np.float64)
    if metric == "cosine":
        qn, cn = np.linalg.norm(q, axis=1, keepdims=True), np.linalg.norm(c, axis=1, keepdims=True)
        q, c = np.divide(q, qn, out=np.zeros_like(q), where=qn > 0), np.divide(c, cn, out=np.zeros_like(c), where=cn > 0)
    rows, values = [], []
    for qi in q:
        if metric == "euclidean":
            scored = sorted((float(np.sqrt(((qi - cj) ** 2).sum())), j) for j, cj in enumerate(c))
        else:
            scored = sorted((-float(qi @ cj), j) for j, cj in enumerate(c))
            scored = [(-s, j) for s, j in scored]
        scored = scored[:k] + [(np.nan, -1)] * max(0, k - len(scored))
        rows.append([j for _, j in scored])
        values.append([s for s, _ in scored])
    return np.array(rows), np.array(values)


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_matches_the_oracle(metric, dtype):
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((300, 8)).astype(dtype)
    queries = rng.standard_normal((40, 8)).astype(dtype)
    got = top_k(queries, corpus, 10, metric=metric, execution=Execution(budget_mib=0.01))
    rows, values = oracle(queries, corpus, 10, metric)
    assert got.indices.dtype == np.int64 and got.values.dtype == np.float32
    np.testing.assert_array_equal(got.indices, rows)
    np.testing.assert_allclose(got.values, values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_ties_rank_by_ascending_row_whatever_the_blocks(metric):
    # Integer-valued vectors with many duplicates: exact float32 scores, many ties,
    # spread over corpus blocks of every size and query tiles of every width.
    rng = np.random.default_rng(2)
    corpus = rng.integers(-2, 3, (257, 4)).astype(np.float32)
    queries = rng.integers(-2, 3, (23, 4)).astype(np.float32)
    expected, _ = oracle(queries, corpus, 30, metric)
    for budget_rows, query_tile, corpus_tile in ((1, 2, 7), (40, 3, 5), (64, 8, 16), (10_000, 64, 4096)):
        got = top_k(queries, corpus, 30, metric=metric, execution=Execution(budget_mib=budget_rows * 24 / 2**20),
                    grid=(query_tile, corpus_tile))
        np.testing.assert_array_equal(got.indices, expected)


def test_cosine_ties_between_duplicate_rows():
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    got = top_k(np.array([[1.0, 0.0], [0.0, 1.0]]), corpus, 5, metric="cosine", execution=Execution(budget_mib=1e-5))
    assert got.indices.tolist() == [[0, 2, 3, 1, 4], [1, 4, 0, 2, 3]]


def test_k_larger_than_the_corpus_pads():
    corpus = np.array([[0.0], [3.0], [1.0]])
    got = top_k(np.array([[0.9]]), corpus, 5, metric="euclidean")
    assert got.indices.tolist() == [[2, 0, 1, -1, -1]]
    np.testing.assert_allclose(got.values[0, :3], [0.1, 0.9, 2.1], rtol=1e-6)
    assert np.isnan(got.values[0, 3:]).all()


def test_memmap_corpus_and_engine_threads(tmp_path):
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((9000, 16)).astype(np.float32)
    np.save(tmp_path / "c.npy", corpus)
    mapped = np.load(tmp_path / "c.npy", mmap_mode="r")
    queries = rng.standard_normal((70, 16))
    # Same scores to the bit whatever the budget, the engine, the corpus dtype/memory map:
    # the tile grid is fixed.
    one = top_k(queries, mapped, 7, metric="dot", execution=Execution.local(1, budget_mib=0.02))
    two = top_k(queries, corpus, 7, metric="dot", execution=Execution.local(2, budget_mib=100.0))
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.values, two.values)
    assert not mapped.flags.writeable  # never written


def test_progress_reaches_the_total():
    seen = []
    top_k(np.ones((5, 2)), np.ones((50, 2)), 3, metric="dot",
          execution=Execution(budget_mib=1e-4, progress=lambda done, total: seen.append((done, total))))
    assert seen[-1][0] == seen[-1][1] == 250


def test_rejects_bad_arguments():
    from embedkit.errors import InputError, OptionError

    with pytest.raises(OptionError):
        top_k(np.ones((1, 2)), np.ones((3, 2)), 0, metric="dot")
    with pytest.raises(OptionError):
        top_k(np.ones((1, 2)), np.ones((3, 2)), 1, metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="3 dimensions"):
        top_k(np.ones((1, 3)), np.ones((3, 2)), 1, metric="dot")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 60), st.integers(1, 12), st.integers(1, 80), st.sampled_from(["dot", "euclidean"]),
       st.integers(0, 10_000))
def test_property_equals_oracle_on_integer_data(n, q, k, metric, seed):
    rng = np.random.default_rng(seed)
    corpus = rng.integers(-3, 4, (n, 3)).astype(np.float32)
    queries = rng.integers(-3, 4, (q, 3)).astype(np.float32)
    got = top_k(queries, corpus, k, metric=metric, execution=Execution(budget_mib=rng.integers(1, 40) * 20 / 2**20))
    rows, _ = oracle(queries, corpus, k, metric)
    np.testing.assert_array_equal(got.indices, rows)


def test_euclidean_ranking_survives_a_large_common_offset() -> None:
    """Rows sharing an offset of 1000 with differences of 0.01: the float32 expansion must be
    taken on centred rows, else the distances round to 0 and the order is noise."""
    rng = np.random.default_rng(3)
    corpus = 1000.0 + 0.01 * rng.standard_normal((400, 16))
    queries = 1000.0 + 0.01 * rng.standard_normal((20, 16))
    found = top_k(queries, corpus, 10, metric="euclidean")
    exact = np.sqrt(((queries[:, None, :] - corpus[None, :, :]) ** 2).sum(axis=2))
    expected = np.argsort(exact, axis=1, kind="stable")[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.indices, expected)])
    assert overlap >= 0.95, overlap
    np.testing.assert_allclose(found.values, np.take_along_axis(exact, expected, axis=1), rtol=1e-3)


def test_a_corpus_file_truncated_while_ranking_is_one_error(tmp_path) -> None:
    from embedkit.errors import InputError

    path = tmp_path / "c.npy"
    np.save(path, np.random.default_rng(0).standard_normal((5000, 8)).astype(np.float32))
    corpus = np.load(path, mmap_mode="r")
    with open(path, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(InputError, match="shrank|truncat"):
        top_k(np.ones((3, 8), np.float32), corpus, 5, metric="cosine")
