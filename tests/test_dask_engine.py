"""The Dask engine gives the local engine's answers, row for row and bit for bit, even when a
worker dies mid-run."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from embedkit.engine import LocalEngine
from embedkit.losses.allpairs import scan_label_pairs
from embedkit.losses.compute import LossSpec, compute_loss
from tests.conftest import clustered, dataset

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_engine():
    from embedkit.dask_engine import DaskEngine

    engine = DaskEngine(workers=2)
    yield engine
    engine.close()


def test_all_pairs_loss_is_identical_on_dask(dask_engine) -> None:
    x, labels = clustered(1500, 16, 12, seed=4, spread=0.9)
    for kind in ("contrastive", "bce"):
        spec = LossSpec(kind, margin=6.0, margins=(4.0, 8.0) if kind == "contrastive" else ())
        local = compute_loss(dataset(x, labels), spec, engine=LocalEngine(2))
        remote = compute_loss(dataset(x, labels), spec, engine=dask_engine)
        assert remote.details["method"] == "tiled kernel"
        assert remote.total == local.total and remote.active == local.active and remote.count == local.count
        assert [p.total for p in remote.sweep] == [p.total for p in local.sweep]
        for key in local.top:
            np.testing.assert_array_equal(remote.top[key], local.top[key])


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(dask_engine) -> None:
    x, labels = clustered(3000, 16, 20, seed=6, spread=0.9)
    local = scan_label_pairs(x, labels, form=0, margins=(6.0,), tile_rows=32, engine=LocalEngine(2))
    client = dask_engine.client
    pids = client.run(os.getpid)  # worker address -> process id
    victims: list[int] = []

    def kill_one_worker(done: int, total: int) -> None:
        if not victims:
            victims.append(pids[sorted(pids)[0]])
            os.kill(victims[0], signal.SIGKILL)

    remote = scan_label_pairs(x, labels, form=0, margins=(6.0,), tile_rows=32, engine=dask_engine,
                              progress=kill_one_worker)
    assert victims, "the worker was never killed"
    assert remote.count == local.count == 3000 * 2999 // 2
    np.testing.assert_array_equal(remote.totals, local.totals)
    np.testing.assert_array_equal(remote.actives, local.actives)
    np.testing.assert_array_equal(remote.top["i"], local.top["i"])
    client.wait_for_workers(2, timeout=60)


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from embedkit.dask_engine import DaskEngine
    from embedkit.errors import OptionError

    real_import = builtins.__import__

    def no_distributed(name: str, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(OptionError, match=r"pip install 'embedkit\[dask\]'"):
        DaskEngine()
