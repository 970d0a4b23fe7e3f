"""Approximate indexes (IVF, HNSW) for hard negatives: recall on low-intrinsic-dimension data,
measured here by brute force and by ``check_recall``; the exact wrapper stays as it was."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.knn import (
    approximate_nearest_negatives,
    build_index,
    exact_knn,
    ivf_lists,
)
from embedkit.mining.strategies import MineSpec, mine


def low_dimensional(rows: int, *, latent: int = 8, dim: int = 64, classes: int = 100, seed: int = 0):  # type: ignore[no-untyped-def]
    """Clusters in a ``latent``-d space mapped to ``dim`` by a fixed random linear map, plus small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, latent)) * 2.0
    labels = rng.integers(0, classes, rows)
    z = centres[labels] + rng.standard_normal((rows, latent))
    x = z @ rng.standard_normal((latent, dim)) / np.sqrt(latent) + 0.01 * rng.standard_normal((rows, dim))
    return x.astype(np.float32), labels.astype(np.int64)


def brute_recall(x: np.ndarray, labels: np.ndarray, result, sample: int = 200) -> float:  # type: ignore[no-untyped-def]
    """Fraction of sampled anchors whose mined negative is at the true nearest-negative distance."""
    rng = np.random.default_rng(123)
    it = result.items
    anchors = rng.choice(len(labels), sample, replace=False)
    hits = 0
    for a in anchors:
        d = np.linalg.norm(x.astype(np.float64) - x[a], axis=1)
        true = d[labels != labels[a]].min()
        got = d[it["negative"][it["anchor"] == a]]
        hits += bool(len(got)) and got.min() <= true * (1 + 1e-5) + 1e-6
    return hits / sample


@pytest.fixture(scope="module")
def low_dim() -> tuple[np.ndarray, np.ndarray]:
    return low_dimensional(20_000)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_hard_reaches_stated_recall(index: str, low_dim: tuple[np.ndarray, np.ndarray]) -> None:
    x, labels = low_dim
    result = mine(x, labels, MineSpec("hard", index=index, check_recall=300))
    assert result.index == index
    measured = brute_recall(x, labels, result)
    assert measured >= 0.9, measured
    assert result.recall is not None and result.recall >= 0.9
    assert abs(result.recall - measured) < 0.08  # check_recall measures what brute force does
    assert (labels[result.items["anchor"]] != labels[result.items["negative"]]).all()
    assert (result.items["anchor"] != result.items["negative"]).all()


def test_approximate_recall_check_can_report_a_low_figure(low_dim: tuple[np.ndarray, np.ndarray]) -> None:
    """A starved IVF (1 list probed of many) must report lower recall than a generous one."""
    x, labels = low_dim
    starved = mine(x, labels, MineSpec("hard", index="ivf", nlist=512, nprobe=1, check_recall=300))
    generous = mine(x, labels, MineSpec("hard", index="ivf", nlist=512, nprobe=64, check_recall=300))
    assert starved.recall is not None and generous.recall is not None
    assert starved.recall < generous.recall
    assert abs(starved.recall - brute_recall(x, labels, starved)) < 0.08


def test_approximate_search_grows_k_past_the_class() -> None:
    """Tight classes: the first lists hold only the anchor's class; the result must still be negatives."""
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((4, 16)) * 10
    labels = np.repeat(np.arange(4), 500)
    x = (centres[labels] + 0.01 * rng.standard_normal((2000, 16))).astype(np.float32)
    result = mine(x, labels, MineSpec("hard", index="hnsw", negatives=2, check_recall=100))
    it = result.items
    assert len(it["anchor"]) == 4000
    assert (labels[it["anchor"]] != labels[it["negative"]]).all()
    assert result.recall is not None and result.recall >= 0.9


def test_auto_picks_exact_for_small_inputs_and_says_so() -> None:
    x, labels = low_dimensional(500)
    result = mine(x, labels, MineSpec("hard"))
    assert result.index == "exact" and "auto" in result.index_reason
    semi = mine(x, labels, MineSpec("semi-hard"))
    assert semi.index == "exact" and "band" in semi.index_reason


def test_auto_picks_ivf_beyond_the_threshold() -> None:
    x, labels = low_dimensional(3000)
    result = mine(x, labels, MineSpec("hard", check_recall=100, auto_exact_max_rows=1000))
    assert result.index == "ivf" and "3,000 rows" in result.index_reason
    assert result.recall is not None and result.recall >= 0.9


def test_cosine_index_searches_normalised_rows() -> None:
    x, labels = low_dimensional(3000, seed=4)
    x = x * np.random.default_rng(0).uniform(0.5, 5.0, (len(x), 1)).astype(np.float32)  # norms must not matter
    result = mine(x, labels, MineSpec("hard", index="hnsw", metric="cosine", check_recall=200))
    assert result.recall is not None and result.recall >= 0.9
    it = result.items
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(it["d_an"], 1 - np.einsum("ij,ij->i", xn[it["anchor"]], xn[it["negative"]]), atol=1e-5)


def test_index_builder_does_not_mutate_the_input() -> None:
    x, labels = low_dimensional(2000)
    before = x.copy()
    built = build_index(x, "ivf", metric="cosine")
    found, complete = approximate_nearest_negatives(built, x, labels, np.arange(10), 3, metric="cosine")
    np.testing.assert_array_equal(x, before)
    assert found.shape == (10, 3) and complete.all()
    assert ivf_lists(2000) == 51 and ivf_lists(10**6) == 4000


def test_exact_knn_still_drops_self_by_id() -> None:
    x = np.array([[0.0], [0.0], [1.0]])  # rows 0 and 1 are duplicates
    result = exact_knn(x, 1)
    assert result.indices[0, 0] == 1 and result.indices[1, 0] == 0  # the twin, never itself
    assert result.indices[2, 0] in (0, 1)
