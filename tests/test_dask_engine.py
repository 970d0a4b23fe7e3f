"""The Dask engine gives the local engine's answers, row for row and bit for bit, even when a
worker dies mid-run."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from embedkit.dataset import Dataset
from embedkit.execution import Execution
from embedkit.losses.allpairs import scan_label_pairs
from embedkit.losses.compute import LossSpec, compute_loss
from embedkit.mining.keys import prepare
from tests.conftest import clustered, dataset

distributed = pytest.importorskip("distributed")

#: How long a SIGKILLed worker may take to come back: a fresh process imports numpy, Dask and
#: numba, which takes minutes on a machine loaded by other test runs (a bound, not a timing).
WORKER_RESTART_SECONDS = 300


@pytest.fixture(scope="module")
def dask_engine():
    from embedkit.engines.dask import DaskEngine

    engine = DaskEngine(workers=2)
    yield engine
    engine.close()


def test_all_pairs_loss_is_identical_on_dask(dask_engine) -> None:
    x, labels = clustered(1500, 16, 12, seed=4, spread=0.9)
    for kind in ("contrastive", "bce"):
        spec = LossSpec(kind, margin=6.0, margins=(4.0, 8.0) if kind == "contrastive" else ())
        local = compute_loss(dataset(x, labels), spec, execution=Execution.local(2))
        remote = compute_loss(dataset(x, labels), spec, execution=Execution(dask_engine))
        assert remote.details["method"] == "tiled kernel"
        assert remote.total == local.total and remote.active == local.active and remote.count == local.count
        assert [p.total for p in remote.sweep] == [p.total for p in local.sweep]
        for key in local.top:
            np.testing.assert_array_equal(remote.top[key], local.top[key])


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(dask_engine) -> None:
    x, labels = clustered(3000, 16, 20, seed=6, spread=0.9)
    local = scan_label_pairs(x, labels, form=0, margins=(6.0,), tile_rows=32, execution=Execution.local(2))
    client = dask_engine.client
    pids = client.run(os.getpid)  # worker address -> process id
    victims: list[int] = []

    def kill_one_worker(done: int, total: int) -> None:
        if not victims:
            victims.append(pids[sorted(pids)[0]])
            os.kill(victims[0], signal.SIGKILL)

    remote = scan_label_pairs(x, labels, form=0, margins=(6.0,), tile_rows=32, execution=Execution(dask_engine, progress=kill_one_worker))
    assert victims, "the worker was never killed"
    assert remote.count == local.count == 3000 * 2999 // 2
    np.testing.assert_array_equal(remote.totals, local.totals)
    np.testing.assert_array_equal(remote.actives, local.actives)
    np.testing.assert_array_equal(remote.top["i"], local.top["i"])
    client.wait_for_workers(2, timeout=WORKER_RESTART_SECONDS)


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from embedkit.engines.dask import DaskEngine
    from embedkit.errors import OptionError

    real_import = builtins.__import__

    def no_distributed(name: str, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(OptionError, match=r"pip install 'embedkit\[dask\]'"):
        DaskEngine()


# -- mine and eval on Dask --------------------------------------------------------------------

MINE_CASES = [
    {"strategy": "hard", "negatives": 2},
    {"strategy": "semi-hard", "margin": 0.8},
    {"strategy": "semi-hard", "margin": 0.8, "select": "all"},
    {"strategy": "semi-hard", "margin": 0.3, "fallback": "tf-addons"},
    {"strategy": "batch-hard"},
    {"strategy": "easy", "margin": 0.5},
    {"strategy": "within-margin", "margin": 3.0},
    {"strategy": "hard", "batch_size": 300},
    {"strategy": "semi-hard", "margin": 0.8, "batch_size": 300},
]


@pytest.mark.parametrize("case", MINE_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_mine_is_identical_on_dask(dask_engine, case: dict) -> None:
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(1200, 12, 15, seed=8, spread=0.7)
    spec = MineSpec(index="exact", **case)
    local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=1.0))
    remote = mine(x, labels, spec, execution=Execution(dask_engine, budget_mib=1.0))
    assert local.items.keys() == remote.items.keys() and len(local.items[next(iter(local.items))]) > 0
    for key in local.items:
        np.testing.assert_array_equal(remote.items[key], local.items[key])
    assert (remote.anchors, remote.anchors_with_none, remote.slots_with_none) == (
        local.anchors, local.anchors_with_none, local.slots_with_none)


def test_approximate_mining_shards_anchors_over_the_cluster(dask_engine) -> None:
    from embedkit.knn import (
        approximate_nearest_negatives,
        build_index,
        sharded_approximate_nearest_negatives,
    )

    x, labels = clustered(3000, 8, 30, seed=9, spread=0.5)
    built = build_index(x, "ivf", nlist=16, nprobe=4)
    anchors = np.arange(0, 3000, 2)
    whole, complete = approximate_nearest_negatives(built, x, labels, anchors, 3, candidates=5)
    sharded, sharded_complete = sharded_approximate_nearest_negatives(dask_engine, built, x, labels, anchors, 3,
                                                                      candidates=5)
    agree = (sharded == whole).all(axis=1).mean()
    assert agree >= 0.99, agree  # BLAS thread counts may reorder exact near-ties, nothing more
    assert (sharded_complete == complete).mean() >= 0.99


def test_eval_is_identical_on_dask(dask_engine) -> None:
    from embedkit.metrics import retrieval_metrics

    x, labels = clustered(2500, 16, 25, seed=10, spread=1.2)
    local = retrieval_metrics(x, labels, ks=(1, 5, 20), per_class=True, execution=Execution.local(2, budget_mib=0.5))
    remote = retrieval_metrics(x, labels, ks=(1, 5, 20), per_class=True, execution=Execution(dask_engine, budget_mib=0.5))
    assert (remote.precision_at_1, remote.r_precision, remote.map_at_r) == (
        local.precision_at_1, local.r_precision, local.map_at_r)
    assert remote.recall_at_k == local.recall_at_k
    np.testing.assert_array_equal(remote.per_class["map_at_r"], local.per_class["map_at_r"])


def test_mine_survives_a_killed_worker(dask_engine) -> None:
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(4000, 16, 20, seed=11, spread=0.7)
    spec = MineSpec("semi-hard", margin=0.8, index="exact")
    local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=0.25))
    pids = dask_engine.client.run(os.getpid)
    victims: list[int] = []

    def kill_one_worker(done: int, total: int) -> None:
        if not victims:
            victims.append(pids[sorted(pids)[-1]])
            os.kill(victims[0], signal.SIGKILL)

    remote = mine(x, labels, spec, execution=Execution(dask_engine, budget_mib=0.25, progress=kill_one_worker))
    assert victims
    for key in local.items:
        np.testing.assert_array_equal(remote.items[key], local.items[key])
    dask_engine.client.wait_for_workers(2, timeout=WORKER_RESTART_SECONDS)


def test_cli_engine_dask_matches_local(run_cli, tmp_path) -> None:
    from tests.conftest import SAMPLE

    outputs = {}
    for engine in ("local", "dask"):
        out = tmp_path / f"{engine}.csv"
        result = run_cli("mine", SAMPLE / "emb.npy", "--strategy", "hard", "--engine", engine, "--workers", "2",
                         "-o", out, "--quiet")
        assert result.exit_code == 0, result.stderr
        outputs[engine] = out.read_bytes()
    assert outputs["local"] == outputs["dask"]
    result = run_cli("loss", SAMPLE / "emb.npy", "--engine", "local", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2 and "--scheduler applies to --engine dask" in result.stderr


def test_shards_write_part_files_merged_in_order(dask_engine, tmp_path) -> None:
    """--parts-dir: every shard writes its own part file atomically (rerun whole after a
    killed worker); the driver merges them in shard order and removes them."""
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(3000, 16, 20, seed=12, spread=0.7)
    spec = MineSpec("semi-hard", margin=0.8, index="exact", select="all")
    local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=0.25))
    # Both workers up (a worker killed by an earlier test may still be restarting), so the
    # one killed here is a live one and the other carries the run.
    dask_engine.client.wait_for_workers(2, timeout=WORKER_RESTART_SECONDS)
    pids = dask_engine.client.run(os.getpid)
    victims: list[int] = []
    seen_parts: list[int] = []

    def kill_one_worker(done: int, total: int) -> None:
        seen_parts.append(len(list(tmp_path.iterdir())))
        if not victims:
            victims.append(pids[sorted(pids)[0]])
            os.kill(victims[0], signal.SIGKILL)

    dask_engine.parts_dir = str(tmp_path)
    try:
        remote = mine(x, labels, spec, execution=Execution(dask_engine, budget_mib=0.25, progress=kill_one_worker))
    finally:
        dask_engine.parts_dir = None
    assert victims and seen_parts
    for key in local.items:
        np.testing.assert_array_equal(remote.items[key], local.items[key])
    assert list(tmp_path.iterdir()) == []  # merged and removed; no .partial left behind
    dask_engine.client.wait_for_workers(2, timeout=WORKER_RESTART_SECONDS)


def test_parts_dir_must_exist() -> None:
    from embedkit.engines.dask import DaskEngine
    from embedkit.errors import OptionError

    with pytest.raises(OptionError, match="--parts-dir /nonexistent/parts: no such folder"):
        DaskEngine(parts_dir="/nonexistent/parts")


def test_query_corpus_ranking_and_ir_figures_are_identical_on_dask(dask_engine) -> None:
    from embedkit.ireval import evaluate_qrels
    from embedkit.qrels import Qrels
    from embedkit.ranking import top_k

    rng = np.random.default_rng(5)
    corpus = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((600, 16)).astype(np.float32)
    local = top_k(queries, corpus, 20, metric="euclidean", execution=Execution(budget_mib=0.1))
    remote = top_k(queries, corpus, 20, metric="euclidean", execution=Execution(dask_engine, budget_mib=0.1))
    np.testing.assert_array_equal(local.indices, remote.indices)
    np.testing.assert_array_equal(local.values, remote.values)
    qrels = Qrels(np.arange(600).astype(str), rng.integers(0, 3000, 600).astype(str), np.ones(600, np.int64), "r")
    a = evaluate_qrels(Dataset(corpus, "c"), Dataset(queries, "q"), qrels, execution=Execution(dask_engine))
    b = evaluate_qrels(Dataset(corpus, "c"), Dataset(queries, "q"), qrels)
    assert a.figures == b.figures


# -- data by path -----------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_a_mapped_file_reaches_the_workers_by_path(dask_engine, tmp_path, metric: str) -> None:
    import pickle

    from embedkit.mapped import is_path_backed, open_npy
    from embedkit.mining import blocked
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(1500, 24, 15, seed=13, spread=0.7)
    np.save(tmp_path / "x.npy", x)
    mapped = open_npy(str(tmp_path / "x.npy"))
    prep = prepare(mapped, metric)  # type: ignore[arg-type]
    assert is_path_backed(prep.x)  # no normalised or converted copy of the matrix
    job = blocked._job(prep, labels, 1.0, 256, 2048, anchors=np.arange(1500), k=1)
    # The path, not the rows: what is left is the three 8-byte-per-row vectors (terms, codes, anchors).
    assert len(pickle.dumps(dask_engine.by_path(job))) < 3 * 8 * 1500 + 1000 < x.nbytes
    for case in ({"strategy": "hard", "negatives": 2}, {"strategy": "semi-hard", "margin": 0.5, "select": "all"}):
        spec = MineSpec(index="exact", metric=metric, **case)  # type: ignore[arg-type]
        local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=0.25))
        remote = mine(mapped, labels, spec, execution=Execution(dask_engine, budget_mib=0.25))
        for key in local.items:
            np.testing.assert_array_equal(remote.items[key], local.items[key])


def test_large_in_memory_arrays_are_spilled_once_and_read_by_path(dask_engine, monkeypatch) -> None:
    import pickle

    from embedkit.engines import dask as dask_module
    from embedkit.mapped import is_path_backed
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(1200, 16, 12, seed=14, spread=0.7)
    monkeypatch.setattr(dask_module, "SPILL_BYTES", 4096)
    spec = MineSpec("hard", index="exact", negatives=2)
    try:
        job = dask_engine.by_path((x, labels[:10]))
        assert is_path_backed(job[0]) and job[1] is not None and not is_path_backed(job[1])
        assert dask_engine.by_path(x) is job[0]  # spilled once per array
        assert len(pickle.dumps(job[0])) < 1000
        files = list(dask_engine._spill_files)
        assert files and all(os.path.exists(f) for f in files)
        local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=0.25))
        remote = mine(x, labels, spec, execution=Execution(dask_engine, budget_mib=0.25))
        for key in local.items:
            np.testing.assert_array_equal(remote.items[key], local.items[key])
    finally:
        dask_engine.drop_spills()
    assert not any(os.path.exists(f) for f in files)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_query_corpus_ranking_of_mapped_files_is_identical_on_dask(dask_engine, tmp_path, metric: str) -> None:
    from embedkit.mapped import open_npy
    from embedkit.ranking import top_k

    rng = np.random.default_rng(15)
    corpus = (rng.standard_normal((2500, 16)) + 3.0).astype(np.float32)
    queries = (rng.standard_normal((500, 16)) + 3.0).astype(np.float32)
    np.save(tmp_path / "c.npy", corpus)
    np.save(tmp_path / "q.npy", queries)
    local = top_k(queries, corpus, 10, metric=metric, execution=Execution(budget_mib=0.1))  # type: ignore[arg-type]
    remote = top_k(open_npy(str(tmp_path / "q.npy")), open_npy(str(tmp_path / "c.npy")), 10,
                   metric=metric, execution=Execution(dask_engine, budget_mib=0.1))  # type: ignore[arg-type]
    np.testing.assert_array_equal(local.indices, remote.indices)
    np.testing.assert_array_equal(local.values, remote.values)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_an_npy_shard_folder_reaches_the_workers_as_its_files(dask_engine, tmp_path, metric: str) -> None:
    import pickle

    from embedkit.io import load_dataset
    from embedkit.mapped import is_path_backed
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(1400, 20, 14, seed=16, spread=0.7)
    x = x.astype(np.float32)
    for k, (a, b) in enumerate([(0, 500), (500, 1100), (1100, 1400)]):
        np.save(tmp_path / f"part-{k}.npy", x[a:b])
    loaded = load_dataset(str(tmp_path)).embeddings
    prep = prepare(loaded, metric)  # type: ignore[arg-type]
    assert is_path_backed(prep.x) and len(pickle.dumps(dask_engine.by_path(prep.x))) < 2000
    spec = MineSpec("semi-hard", margin=0.5, index="exact", metric=metric, select="all")  # type: ignore[arg-type]
    local = mine(x, labels, spec, execution=Execution.local(2, budget_mib=0.25))
    remote = mine(loaded, labels, spec, execution=Execution(dask_engine, budget_mib=0.25))
    for key in local.items:
        np.testing.assert_array_equal(remote.items[key], local.items[key])
