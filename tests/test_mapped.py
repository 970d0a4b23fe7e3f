"""Path-backed arrays (embedkit.mapped): they pickle by path, read as the memory map does, and
the jobs built on them give the in-memory answers bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from embedkit import mapped
from embedkit.arrays import l2_normalized
from embedkit.errors import InputError
from embedkit.execution import Execution
from embedkit.io import load_dataset
from embedkit.mapped import LazyRows, PathArray, is_path_backed, open_npy, spill, work_rows
from embedkit.mining.keys import prepare
from tests.conftest import clustered


@pytest.fixture()
def matrix(tmp_path):
    x, labels = clustered(700, 12, 9, seed=3, spread=0.8)
    x[5] = 0.0  # a zero row stays zero when normalised
    path = tmp_path / "x.npy"
    np.save(path, x.astype(np.float32))
    return path, x.astype(np.float32), labels


def test_the_whole_map_pickles_by_path_and_views_by_value(matrix) -> None:
    path, x, _ = matrix
    a = open_npy(str(path))
    assert isinstance(a, PathArray) and is_path_backed(a)
    for protocol in (2, 4, 5):
        data = pickle.dumps(a, protocol=protocol)
        assert len(data) < 400  # the path, not the 33 KiB of rows
        back = pickle.loads(data)
        assert isinstance(back, PathArray) and is_path_backed(back)
        np.testing.assert_array_equal(back, x)
    view = a[100:110]
    assert not is_path_backed(view) and len(pickle.dumps(view)) > view.nbytes
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(view)), x[100:110])
    picked = a[[3, 1, 3]]
    assert type(picked) is np.ndarray and type(a + 1) is np.ndarray  # copies are plain arrays
    np.testing.assert_array_equal(picked, x[[3, 1, 3]])


def test_a_file_missing_or_shorter_where_it_is_unpickled_is_an_input_error(matrix, tmp_path) -> None:
    path, _, _ = matrix
    data = pickle.dumps(open_npy(str(path)))
    with open(path, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(InputError, match="bytes on this worker"):
        pickle.loads(data)
    path.unlink()
    with pytest.raises(InputError, match="cannot be read on this worker"):
        pickle.loads(data)


def test_loading_an_npy_file_keeps_it_path_backed(matrix) -> None:
    path, x, _ = matrix
    loaded = load_dataset(str(path)).embeddings
    assert is_path_backed(loaded)
    np.testing.assert_array_equal(loaded, x)


def test_lazy_rows_are_the_normalised_rows_bit_for_bit(matrix, tmp_path) -> None:
    path, x, _ = matrix
    lazy = work_rows(open_npy(str(path)), normalise=True)
    assert isinstance(lazy, LazyRows) and len(pickle.dumps(lazy)) < 500
    whole = l2_normalized(x)
    np.testing.assert_array_equal(lazy[0:300], whole[0:300])
    np.testing.assert_array_equal(lazy[250:700], whole[250:700])
    ids = np.array([5, 699, 0, 5])
    np.testing.assert_array_equal(lazy[ids], whole[ids])
    assert not lazy[4:6][1].any()  # the zero row
    half = tmp_path / "h.npy"
    np.save(half, x.astype(np.float16))
    widened = work_rows(open_npy(str(half)))
    assert isinstance(widened, LazyRows) and widened.dtype == np.float32
    np.testing.assert_array_equal(widened[10:20], x.astype(np.float16)[10:20].astype(np.float32))
    assert work_rows(x) is None  # in memory: the caller prepares it as before


def test_reading_past_the_resident_window_drops_pages_and_reads_the_same(matrix, monkeypatch) -> None:
    path, x, _ = matrix
    monkeypatch.setattr(mapped, "RESIDENT_WINDOW", 4096)
    a = open_npy(str(path))
    dropped = []
    real = PathArray.drop_pages
    monkeypatch.setattr(PathArray, "drop_pages", lambda self: (dropped.append(1), real(self)))
    total = np.zeros(12, dtype=np.float64)
    for start in range(0, 700, 50):
        total += a[start:start + 50].sum(axis=0, dtype=np.float64)
    assert len(dropped) >= 5
    dropped.clear()
    tail = a[100:]  # a view of the mapping counts against the same window
    for start in range(0, 600, 50):
        np.testing.assert_array_equal(tail[start:start + 50], x[100 + start:150 + start])
    assert len(dropped) >= 5
    expected = np.zeros(12, dtype=np.float64)
    for start in range(0, 700, 50):
        expected += x[start:start + 50].sum(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(total, expected)


def test_spill_writes_a_path_backed_copy(tmp_path) -> None:
    x = np.random.default_rng(1).standard_normal((300, 7))
    out = spill(x, str(tmp_path), budget_mib=0.001)
    assert is_path_backed(out) and out.filename.startswith(str(tmp_path))
    np.testing.assert_array_equal(out, x)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no partial file left


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("case", [
    {"strategy": "hard", "negatives": 2},
    {"strategy": "semi-hard", "margin": 0.4, "select": "all"},
    {"strategy": "within-margin", "margin": 0.6},
    {"strategy": "hard", "batch_size": 200},
], ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_mining_a_path_backed_matrix_gives_the_in_memory_answer(matrix, metric: str, case: dict) -> None:
    from embedkit.mining.strategies import MineSpec, mine

    path, x, labels = matrix
    spec = MineSpec(index="exact", metric=metric, **case)  # type: ignore[arg-type]
    memory = mine(x.copy(), labels, spec, execution=Execution.local(2, budget_mib=0.05))
    by_path = mine(open_npy(str(path)), labels, spec, execution=Execution.local(2, budget_mib=0.05))
    assert memory.items.keys() == by_path.items.keys()
    for key in memory.items:
        np.testing.assert_array_equal(by_path.items[key], memory.items[key])


@pytest.mark.parametrize("form", [0, 1])
def test_all_pairs_scan_of_a_path_backed_matrix_gives_the_in_memory_totals(matrix, form: int) -> None:
    from embedkit.losses.allpairs import scan_label_pairs
    from embedkit.losses.pair_kernel import FORM_BCE

    path, x, labels = matrix
    kind = FORM_BCE if form else 0
    memory = scan_label_pairs(x.copy(), labels, form=kind, margins=(3.0,), tile_rows=64, execution=Execution(budget_mib=0.05))
    by_path = scan_label_pairs(open_npy(str(path)), labels, form=kind, margins=(3.0,), tile_rows=64, execution=Execution(budget_mib=0.05))
    np.testing.assert_array_equal(by_path.totals, memory.totals)
    np.testing.assert_array_equal(by_path.actives, memory.actives)
    for key in memory.top:
        np.testing.assert_array_equal(by_path.top[key], memory.top[key])


def test_an_npy_shard_folder_pickles_as_its_files_and_reads_the_same_rows(tmp_path) -> None:
    from embedkit.mapped import ShardedArray, ShardedRows

    x, labels = clustered(900, 10, 7, seed=5, spread=0.8)
    x = x.astype(np.float32)
    folder = tmp_path / "shards"
    folder.mkdir()
    for k, (a, b) in enumerate([(0, 250), (250, 600), (600, 900)]):
        np.save(folder / f"part-{k}.npy", x[a:b])
    loaded = load_dataset(str(folder)).embeddings
    assert isinstance(loaded, ShardedArray) and is_path_backed(loaded)
    np.testing.assert_array_equal(loaded, x)
    data = pickle.dumps(loaded, protocol=5)
    assert len(data) < 1000
    rows = pickle.loads(data)
    assert isinstance(rows, ShardedRows) and rows.shape == x.shape and len(rows) == 900
    for a, b in [(0, 250), (240, 260), (0, 900), (599, 601), (899, 900), (5, 5)]:
        np.testing.assert_array_equal(rows[a:b], x[a:b])
    ids = np.array([899, 0, 250, 249, 600, 3, 3])
    np.testing.assert_array_equal(rows[ids], x[ids])
    assert type(loaded[10:20]) is np.ndarray and not is_path_backed(loaded[10:20])
    np.testing.assert_array_equal(np.asarray(rows), x)
    lazy = work_rows(loaded, normalise=True)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy))[100:700], l2_normalized(x)[100:700])
    np.save(folder / "part-1.npy", x[250:599])  # the file changed since it was read
    with pytest.raises(InputError, match="the file changed"):
        pickle.loads(data)[0:900]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_mining_an_npy_shard_folder_as_a_worker_reads_it_gives_the_in_memory_answer(tmp_path, metric: str) -> None:
    from embedkit.mining.strategies import MineSpec, mine

    x, labels = clustered(800, 12, 9, seed=6, spread=0.8)
    x = x.astype(np.float32)
    folder = tmp_path / "shards"
    folder.mkdir()
    for k, (a, b) in enumerate([(0, 300), (300, 800)]):
        np.save(folder / f"part-{k}.npy", x[a:b])
    loaded = load_dataset(str(folder)).embeddings
    spec = MineSpec("semi-hard", margin=0.5, index="exact", metric=metric)  # type: ignore[arg-type]
    memory = mine(x.copy(), labels, spec, execution=Execution.local(2, budget_mib=0.05))
    # What a worker sees: the job pickled and unpickled (shards mapped by path, not the rows).

    prep = prepare(loaded, metric)  # type: ignore[arg-type]
    assert is_path_backed(prep.x)
    worker_view = pickle.loads(pickle.dumps(prep))
    assert not isinstance(worker_view.x, np.ndarray) or not worker_view.x.flags.owndata
    by_path = mine(loaded, labels, spec, execution=Execution.local(2, budget_mib=0.05))
    for key in memory.items:
        np.testing.assert_array_equal(by_path.items[key], memory.items[key])
