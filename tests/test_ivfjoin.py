"""The list-grouped IVF join against brute-force oracles: with every list probed it is the
exact scan; with fewer, every pair it reports is exact and its lists are exactly the nearest
negatives among the probed lists' members; the answer does not depend on workers, tile
sizes or the engine; labels are masked; anchors it cannot complete go to the exact scan."""

from __future__ import annotations

import numpy as np
import pytest

import embedkit.ivfjoin as ivfjoin
from embedkit.execution import Execution
from embedkit.ivfjoin import ivf_nearest_negatives, train_centroids
from embedkit.mining.blocked import nearest_negatives
from embedkit.mining.keys import prepare
from embedkit.mining.strategies import MineSpec, mine
from tests.conftest import clustered


def squared_distances(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)


def probed_oracle(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray, centre: np.ndarray | None,
                  anchors: np.ndarray, nprobe: int, width: int) -> list[list[int]]:
    """Loop oracle: each anchor's ``width`` nearest negatives (ties to the smaller row) among
    the members of its ``nprobe`` nearest lists (rows assigned to their nearest centroid)."""
    xc = x.astype(np.float64) - (0 if centre is None else centre)
    c = centroids.astype(np.float64)
    to_lists = ((xc[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    assign = to_lists.argmin(axis=1)
    d = squared_distances(x)
    out = []
    for a in anchors:
        probed = set(np.argsort(to_lists[a], kind="stable")[:nprobe].tolist())
        pool = [j for j in range(len(x)) if assign[j] in probed and labels[j] != labels[a]]
        pool.sort(key=lambda j: (d[a, j], j))
        out.append(pool[:width])
    return out


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return clustered(900, 12, 15, seed=3, spread=0.8)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_probing_every_list_is_the_exact_scan(small, metric) -> None:  # type: ignore[no-untyped-def]
    x, labels = small
    prep = prepare(x, metric)
    anchors = np.arange(0, len(x), 3)
    exact_v, exact_j, _, _ = nearest_negatives(prep, labels, anchors, 3)
    join = ivf_nearest_negatives(prep, labels, anchors, 3, nlist=12, nprobe=12, candidates=5)
    np.testing.assert_array_equal(join.rows[:, :3], exact_j)
    np.testing.assert_allclose(join.keys[:, :3], exact_v, rtol=1e-5, atol=1e-5)
    assert join.complete.all() and join.nlist == 12 and join.nprobe == 12
    assert join.pairs == len(anchors) * len(x)


def test_fewer_probes_report_exact_pairs_and_the_probed_lists_nearest(small) -> None:  # type: ignore[no-untyped-def]
    x, labels = small
    prep = prepare(x, "euclidean")
    anchors = np.arange(len(x))
    centroids = train_centroids(prep, 20, seed=1)
    join = ivf_nearest_negatives(prep, labels, anchors, 2, nlist=20, nprobe=3, candidates=4, centroids=centroids)
    oracle = probed_oracle(x, labels, centroids, prep.centre, anchors, 3, 4)
    d = squared_distances(x)
    for m, a in enumerate(anchors):
        got = join.rows[m][join.rows[m] >= 0]
        assert got.tolist() == oracle[m]
        assert (labels[got] != labels[a]).all()
        np.testing.assert_allclose(join.keys[m][: len(got)], d[a, got], rtol=1e-4, atol=1e-4)
    # Recall of the true nearest negative, measured against brute force: high but not perfect.
    truth = np.array([d[a][labels != labels[a]].min() for a in anchors])
    recall = np.mean(d[anchors, join.rows[:, 0]] <= truth * (1 + 1e-6))
    assert 0.7 <= recall < 1.0, recall


def test_the_answer_does_not_depend_on_workers_tiles_or_chunks(small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    x, labels = small
    prep = prepare(x, "euclidean")
    anchors = np.arange(1, len(x), 2)
    centroids = train_centroids(prep, 10, seed=0)
    kw = {"nlist": 10, "nprobe": 4, "candidates": 4, "centroids": centroids}
    base = ivf_nearest_negatives(prep, labels, anchors, 2, execution=Execution.local(1), **kw)
    again = ivf_nearest_negatives(prep, labels, anchors, 2, execution=Execution.local(2), **kw)
    np.testing.assert_array_equal(base.rows, again.rows)  # bit for bit across workers
    np.testing.assert_array_equal(base.keys, again.keys)
    # A tiny budget (query and member chunks of a few rows), fewer list groups, two threads:
    # the same rows; keys may differ in the last bits (BLAS rounds other tile shapes otherwise).
    monkeypatch.setattr(ivfjoin, "MEMBER_CHUNK", 7)
    monkeypatch.setattr(ivfjoin, "GROUP_TASKS", 3)
    other = ivf_nearest_negatives(prep, labels, anchors, 2, execution=Execution.local(2, budget_mib=0.002), **kw)
    np.testing.assert_array_equal(base.rows, other.rows)
    np.testing.assert_allclose(base.keys, other.keys, rtol=1e-6)


def test_labels_are_masked_and_short_lists_are_incomplete() -> None:
    # Four tight, far-apart classes: one probed list holds only the anchor's own class.
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((4, 8)) * 20
    labels = np.repeat(np.arange(4), 60)
    x = (centres[labels] + 0.05 * rng.standard_normal((240, 8))).astype(np.float32)
    prep = prepare(x, "euclidean")
    join = ivf_nearest_negatives(prep, labels, np.arange(240), 1, nlist=4, nprobe=1, candidates=2)
    found = join.rows[join.rows >= 0]
    assert len(found) == 0 and not join.complete.any()
    wide = ivf_nearest_negatives(prep, labels, np.arange(240), 1, nlist=4, nprobe=2, candidates=2)
    anchors = np.repeat(np.arange(240), 2).reshape(240, 2)
    ok = wide.rows >= 0
    assert (labels[wide.rows[ok]] != labels[anchors[ok]]).all()


def test_mining_completes_short_anchors_by_the_exact_scan() -> None:
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, 8)) * 20
    labels = np.repeat(np.arange(4), 50)
    x = (centres[labels] + 0.05 * rng.standard_normal((200, 8))).astype(np.float32)
    exact = mine(x, labels, MineSpec("hard", negatives=2, index="exact"))
    approx = mine(x, labels, MineSpec("hard", negatives=2, index="ivf", nlist=4, nprobe=1, check_recall=50))
    assert "completed by exact scan" in approx.index_description
    for column in ("anchor", "positive", "negative"):
        np.testing.assert_array_equal(approx.items[column], exact.items[column])
    assert approx.recall == 1.0


@pytest.mark.parametrize("strategy", ["hard", "batch-hard"])
def test_mining_with_every_list_probed_equals_exact_mining(strategy: str) -> None:
    x, labels = clustered(600, 10, 12, seed=9, spread=0.9)
    negatives = 3 if strategy == "hard" else 1
    exact = mine(x, labels, MineSpec(strategy, negatives=negatives, index="exact"))
    approx = mine(x, labels, MineSpec(strategy, negatives=negatives, index="ivf", nlist=8, nprobe=8, check_recall=40))
    assert approx.index == "ivf" and "list-grouped" in approx.index_description
    for column in exact.items:
        np.testing.assert_array_equal(approx.items[column], exact.items[column])
    assert approx.recall == 1.0


def test_list_and_probe_counts_are_capped_by_the_data() -> None:
    x, labels = clustered(60, 4, 3, seed=1)
    result = mine(x, labels, MineSpec("hard", index="ivf", nlist=500, nprobe=900))
    assert "nlist capped at 60" in result.index_description
    assert "nprobe capped at 60" in result.index_description


def test_the_join_on_a_dask_cluster_matches_the_local_engine(small) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from embedkit.engines.dask import DaskEngine

    x, labels = small
    prep = prepare(x, "euclidean")
    anchors = np.arange(len(x))
    centroids = train_centroids(prep, 10, seed=0)
    kw = {"nlist": 10, "nprobe": 3, "candidates": 3, "centroids": centroids}
    local = ivf_nearest_negatives(prep, labels, anchors, 1, execution=Execution.local(2), **kw)
    with DaskEngine(workers=2) as engine:
        remote = ivf_nearest_negatives(prep, labels, anchors, 1, execution=Execution(engine), **kw)
    np.testing.assert_array_equal(local.rows, remote.rows)
    np.testing.assert_array_equal(local.keys, remote.keys)


def test_a_memory_mapped_file_gives_the_in_memory_answer(small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows are gathered from the mapping by index and its pages released after each task."""
    x, labels = small
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    kw = {"nlist": 9, "nprobe": 3, "candidates": 3, "seed": 4}
    in_memory = ivf_nearest_negatives(prepare(x, "euclidean"), labels, np.arange(len(x)), 2, **kw)
    from_file = ivf_nearest_negatives(prepare(mapped, "euclidean"), labels, np.arange(len(x)), 2, **kw)
    np.testing.assert_array_equal(in_memory.rows, from_file.rows)
    np.testing.assert_array_equal(in_memory.keys, from_file.keys)
    ivfjoin.release_mapped_pages(mapped)
    np.testing.assert_array_equal(np.asarray(mapped[5:9]), x[5:9])  # still readable after the release
