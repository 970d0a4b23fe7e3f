"""Reading embeddings and labels: formats, sniffing, sidecars, stdin, validation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedkit.errors import InputError
from embedkit.io import load_dataset
from embedkit.output import write_table
from embedkit.tables import read_table


def vectors(x: np.ndarray, *, fixed: bool = True) -> pa.Array:
    flat = pa.array(x.ravel())
    if fixed:
        return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((25, 6)).astype(np.float32)


def test_npy_is_memory_mapped(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "e.npy", matrix)
    data = load_dataset(str(tmp_path / "e.npy"))
    assert isinstance(data.embeddings, np.memmap)
    np.testing.assert_array_equal(data.embeddings, matrix)
    assert data.labels is None


@pytest.mark.parametrize("suffix", [".labels.npy", ".labels.txt", ".labels.csv"])
def test_sidecar_labels_are_found(tmp_path: Path, matrix: np.ndarray, suffix: str) -> None:
    np.save(tmp_path / "e.npy", matrix)
    labels = np.arange(len(matrix)) % 4
    if suffix.endswith(".npy"):
        np.save(tmp_path / f"e{suffix}", labels)
    else:
        header = "label\n" if suffix.endswith(".csv") else ""
        (tmp_path / f"e{suffix}").write_text(header + "\n".join(map(str, labels)) + "\n")
    data = load_dataset(str(tmp_path / "e.npy"))
    np.testing.assert_array_equal(data.label_names[data.labels], labels)
    assert data.label_source.endswith(suffix)


def test_string_labels_are_encoded(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "e.npy", matrix[:4])
    (tmp_path / "names.txt").write_text("bob\nalice\nbob\ncarol\n")
    data = load_dataset(str(tmp_path / "e.npy"), labels_path=str(tmp_path / "names.txt"))
    assert list(data.label_names[data.labels]) == ["bob", "alice", "bob", "carol"]
    assert data.labels[0] == data.labels[2] != data.labels[1]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fixed", [True, False])
def test_parquet_vectors_across_row_groups(tmp_path: Path, matrix: np.ndarray, dtype: type, fixed: bool) -> None:
    x = matrix.astype(dtype)
    table = pa.table({"id": [f"r{k}" for k in range(len(x))], "label": np.arange(len(x)) % 3, "emb": vectors(x, fixed=fixed)})
    pq.write_table(table, tmp_path / "e.parquet", row_group_size=7)
    data = load_dataset(str(tmp_path / "e.parquet"), id_column="id")
    assert data.embeddings.dtype == dtype
    np.testing.assert_array_equal(data.embeddings, x)
    np.testing.assert_array_equal(data.labels, np.arange(len(x)) % 3)
    assert data.ids[3] == "r3"


def test_parquet_with_two_vector_columns_needs_column(tmp_path: Path, matrix: np.ndarray) -> None:
    pq.write_table(pa.table({"a": vectors(matrix), "b": vectors(matrix * 2)}), tmp_path / "e.parquet")
    with pytest.raises(InputError, match="--column"):
        load_dataset(str(tmp_path / "e.parquet"))
    data = load_dataset(str(tmp_path / "e.parquet"), column="b")
    np.testing.assert_array_equal(data.embeddings, matrix * 2)


def test_ragged_list_column_is_rejected(tmp_path: Path) -> None:
    pq.write_table(pa.table({"e": pa.array([[1.0, 2.0], [1.0, 2.0, 3.0]])}), tmp_path / "e.parquet")
    with pytest.raises(InputError, match="ragged: row 1 has 3 values"):
        load_dataset(str(tmp_path / "e.parquet"))


def test_npz_with_labels(tmp_path: Path, matrix: np.ndarray) -> None:
    np.savez(tmp_path / "e.npz", embeddings=matrix, labels=np.arange(len(matrix)) % 2)
    data = load_dataset(str(tmp_path / "e.npz"))
    assert data.labels is not None and data.labels.sum() == len(matrix) // 2


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_stdin_is_sniffed_by_magic_bytes(tmp_path: Path, matrix: np.ndarray, fmt: str) -> None:
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, matrix)
    else:
        pq.write_table(pa.table({"e": vectors(matrix)}), buffer)
    data = load_dataset("-", stdin=io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(data.embeddings, matrix)
    assert data.source == "stdin"


@pytest.mark.parametrize("content,message", [
    (b"", "no data"),
])
def test_empty_stdin(content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_dataset(None, stdin=io.BytesIO(content))


def test_invalid_embeddings_are_rejected(tmp_path: Path) -> None:
    cases = {
        "one_d.npy": (np.zeros(5, np.float32), "2-D"),
        "three_d.npy": (np.zeros((2, 2, 2), np.float32), "2-D"),
        "ints.npy": (np.zeros((3, 2), np.int64), "float16, float32 or float64"),
        "empty.npy": (np.zeros((0, 4), np.float32), "empty"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(InputError, match=message):
            load_dataset(str(tmp_path / name))
    bad = np.ones((6, 2), np.float32)
    bad[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match="row 4 has NaN or Inf"):
        load_dataset(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickled object array"):
        load_dataset(str(tmp_path / "obj.npy"))
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(InputError, match="not an NPY, NPZ, Parquet or Arrow IPC file"):
        load_dataset(str(tmp_path / "text.npy"))
    np.save(tmp_path / "cut.npy", np.ones((100, 8), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:500])
    with pytest.raises(InputError, match="cut.npy"):
        load_dataset(str(tmp_path / "cut.npy"))
    with pytest.raises(InputError, match="no such file"):
        load_dataset(str(tmp_path / "missing.npy"))


def test_label_count_must_match(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "e.npy", matrix)
    np.save(tmp_path / "e.labels.npy", np.zeros(7, np.int64))
    with pytest.raises(InputError, match="labels has 7 rows but embeddings has 25"):
        load_dataset(str(tmp_path / "e.npy"))


def test_read_table_formats_and_errors(tmp_path: Path) -> None:
    columns = {"i": np.array([0, 1]), "j": np.array([1, 2]), "y": np.array([1, 0])}
    for name in ("p.csv", "p.parquet", "p.jsonl"):
        write_table(columns, str(tmp_path / name))
        table = read_table(str(tmp_path / name), ("i", "j"))
        np.testing.assert_array_equal(table["j"], [1, 2])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing column"):
        read_table(str(tmp_path / "bad.csv"), ("i", "j"))
    (tmp_path / "float.csv").write_text("i,j\n0.5,1\n")
    with pytest.raises(InputError, match="must hold integers"):
        read_table(str(tmp_path / "float.csv"), ("i", "j"))


def test_write_table_is_atomic_and_refuses_inputs(tmp_path: Path) -> None:
    from embedkit.errors import OptionError

    target = tmp_path / "in.csv"
    target.write_text("keep me")
    with pytest.raises(OptionError, match="also an input"):
        write_table({"a": np.arange(3)}, str(target), inputs=[str(target)])
    assert target.read_text() == "keep me"
    with pytest.raises(OptionError, match="does not exist"):
        write_table({"a": np.arange(3)}, str(tmp_path / "nope" / "out.csv"))
    write_table({"a": np.arange(3)}, str(tmp_path / "out.parquet"))
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_4_gib_npy_is_memory_mapped_not_loaded(tmp_path: Path) -> None:
    """A sparse 4 GiB file: validating it and using three of its rows stays far below its size."""
    import json
    import subprocess
    import sys

    rows, dim = 8 * 1024 * 1024, 128
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(rows, dim))
    big[[0, 1, rows - 1]] = 1.0
    big.flush()
    del big
    (tmp_path / "pairs.csv").write_text(f"i,j,y\n0,1,1\n0,{rows - 1},0\n1,2,0\n")
    # VmHWM is this process's own peak since exec; ru_maxrss would also count the forking
    # parent's resident set (Linux keeps it across execve), i.e. the test runner's.
    code = (
        "import sys, json; from embedkit.cli.main import main\n"
        "def peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print(json.dumps({'code': e.code, 'peak_mib': peak()}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "loss", "--pairs", str(tmp_path / "pairs.csv"),
                           str(tmp_path / "big.npy"), "--json", "--reduction", "sum"], capture_output=True, text=True)
    status = json.loads(done.stderr.strip().splitlines()[-1])
    assert status["code"] == 0, done.stderr
    assert json.loads(done.stdout)["embeddings"]["rows"] == rows
    # Loaded, it would be 4 096 MiB; mapped, it is the interpreter and its libraries
    # (~250-650 MiB depending on what the allocator keeps).
    assert status["peak_mib"] < 1024, status


def test_boolean_label_column_reads_as_0_1(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("i,j,y\n0,1,true\n1,2,false\n")
    table = read_table(str(tmp_path / "p.csv"), ("i", "j"))
    assert table["y"].tolist() == [1, 0]
