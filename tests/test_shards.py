"""Shard sets: a folder, a glob, NPY shards with sidecars, Arrow IPC (file and stream), Hugging
Face save_to_disk folders and hive partitions read as ONE dataset, equal to the concatenated file."""

from __future__ import annotations

import itertools
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedkit.errors import InputError
from embedkit.io import load_dataset
from embedkit.shard_paths import Shard

ROWS, DIM, CLASSES = 300, 8, 4
CUTS = (0, 120, 121, 300)  # the middle part holds one row


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, CLASSES, ROWS)
    centres = rng.standard_normal((CLASSES, DIM))
    x = (centres[labels] + 0.7 * rng.standard_normal((ROWS, DIM))).astype(np.float32)
    ids = np.array([f"row-{i:04d}" for i in range(ROWS)])
    return x, labels, ids


def vectors(x: np.ndarray, *, fixed: bool = True) -> pa.Array:
    flat = pa.array(x.ravel())
    if fixed:
        return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def table(x: np.ndarray, labels: np.ndarray, ids: np.ndarray, *, fixed: bool = True) -> pa.Table:
    return pa.table({"id": ids, "label": labels, "emb": vectors(x, fixed=fixed)})


def parts() -> list[tuple[int, int]]:
    return list(itertools.pairwise(CUTS))


def write_arrow(path: Path, tab: pa.Table, *, stream: bool) -> None:
    with pa.OSFile(str(path), "wb") as sink:
        writer = pa.ipc.new_stream(sink, tab.schema) if stream else pa.ipc.new_file(sink, tab.schema)
        for batch in tab.to_batches(max_chunksize=50):  # several record batches per shard
            writer.write_batch(batch)
        writer.close()


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every layout of the same 300 rows, and the single files they must equal."""
    x, labels, ids = data
    root = tmp_path_factory.mktemp("shards")
    pq.write_table(table(x, labels, ids), root / "one.parquet", row_group_size=64)
    x64 = x.astype(np.float64)
    pq.write_table(table(x64, labels, ids, fixed=False), root / "one64.parquet")

    (root / "pq").mkdir()
    for k, (a, b) in enumerate(parts()):
        pq.write_table(table(x[a:b], labels[a:b], ids[a:b]), root / "pq" / f"part-{k:05d}.parquet",
                       row_group_size=37)
    (root / "pq" / "_SUCCESS").write_bytes(b"")
    (root / "pq" / ".part-00000.parquet.crc").write_bytes(b"\x00crc")
    (root / "pq" / "part-00000.parquet.crc").write_bytes(b"\x00crc")
    pq.write_table(table(x[:0], labels[:0], ids[:0]), root / "pq" / "_common_metadata")
    (root / "pq" / "_metadata").write_bytes(b"not data")

    (root / "npy").mkdir()
    np.save(root / "one.npy", x)
    np.save(root / "one.labels.npy", labels)
    for k, (a, b) in enumerate(parts()):
        np.save(root / "npy" / f"part-{k:03d}.npy", x[a:b])
        np.save(root / "npy" / f"part-{k:03d}.labels.npy", labels[a:b])

    write_arrow(root / "one.arrow", table(x, labels, ids), stream=False)
    (root / "arrow").mkdir()
    for k, (a, b) in enumerate(parts()):
        write_arrow(root / "arrow" / f"part-{k}.feather", table(x[a:b], labels[a:b], ids[a:b], fixed=False),
                    stream=k == 2)  # file and stream format mixed: both are Arrow IPC

    hf = root / "hf"  # what datasets.Dataset.save_to_disk writes: stream shards, list<double>
    hf.mkdir()
    for k, (a, b) in enumerate(parts()):
        tab = pa.table({"id": ids[a:b], "label": labels[a:b], "embedding": vectors(x64[a:b], fixed=False)})
        write_arrow(hf / f"data-{k:05d}-of-00003.arrow", tab, stream=True)
    (hf / "state.json").write_text(json.dumps({"_data_files": [{"filename": f"data-{k:05d}-of-00003.arrow"}
                                                                for k in range(3)]}))
    (hf / "dataset_info.json").write_text("{}")
    return {"root": root, "x": x, "labels": labels, "ids": ids}


def payload(run_cli, *args: Any, input: bytes | None = None) -> dict[str, Any]:
    result = run_cli(*args, "--json", input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def comparable(value: Any) -> Any:
    """A --json payload without the keys that name files or time the run."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()
                if k not in ("source", "shards", "shard_files", "seconds", "output")
                and not (k in ("labels", "embeddings") and isinstance(v, str))}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


CASES = {
    # name: (shard-set path relative to root, single file it must equal, extra options)
    "parquet-folder": ("pq", "one.parquet", ["--id-column", "id"]),
    "parquet-glob": ("pq/part-*.parquet", "one.parquet", ["--id-column", "id"]),
    "npy-sidecars": ("npy", "one.npy", []),
    "arrow-file": ("one.arrow", "one.parquet", ["--id-column", "id"]),
    "arrow-folder": ("arrow", "one.parquet", ["--id-column", "id"]),
    "hf-save-to-disk": ("hf", "one64.parquet", ["--id-column", "id"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_equals_the_single_file(run_cli, layouts, case: str) -> None:
    root = layouts["root"]
    shard_set, single, extra = CASES[case]
    a, b = str(root / shard_set), str(root / single)
    ids = extra if not single.endswith(".npy") else []
    commands = [
        ["loss", "--kind", "contrastive", *ids],
        ["loss", "--kind", "triplet"],
        ["eval", "--k", "1,5"],
        ["inspect"],
        ["check", "--require", "precision_at_1>=0", "--require", "contrastive_loss>=0", "--require", "rows==300"],
    ]
    for command in commands:
        got, want = payload(run_cli, command[0], a, *command[1:]), payload(run_cli, command[0], b, *command[1:])
        assert comparable(got) == comparable(want), command
        shards = got["shards"] if "shards" in got else got["embeddings"]["shards"]
        assert shards == (1 if shard_set.endswith(".arrow") else 3), command

    # mine: the same rows (ids included when there are ids), written as files.
    for target, out in ((a, root / f"mined-{case}-a.csv"), (b, root / f"mined-{case}-b.csv")):
        result = run_cli("mine", target, "--strategy", "hard", *ids, "-o", out, "-q")
        assert result.exit_code == 0, result.stderr
    mined = (root / f"mined-{case}-a.csv").read_text()
    assert mined == (root / f"mined-{case}-b.csv").read_text()
    if ids:
        header = mined.splitlines()[0]
        assert "anchor_id" in header, header
        assert "row-" in mined


def test_query_and_reference_sets_may_be_shard_sets(run_cli, layouts) -> None:
    root = layouts["root"]
    got = payload(run_cli, "eval", "--queries", root / "npy", "--reference", root / "pq", "--k", "1,3")
    want = payload(run_cli, "eval", "--queries", root / "one.npy", "--reference", root / "one.parquet", "--k", "1,3")
    assert comparable(got) == comparable(want)
    assert got["embeddings"]["shards"] == 3 and got["query_embeddings"]["shards"] == 3


def test_human_output_says_how_many_shards(run_cli, layouts) -> None:
    result = run_cli("inspect", layouts["root"] / "pq")
    assert result.exit_code == 0, result.stderr
    assert "300 rows × 8 (float32, 3 Parquet shards)" in result.stdout
    result = run_cli("loss", layouts["root"] / "npy")
    assert "(300 × 8, 3 NPY shards)" in result.stdout


def test_the_shard_map_and_ids_are_kept(layouts) -> None:
    root, x, ids = layouts["root"], layouts["x"], layouts["ids"]
    dataset = load_dataset(str(root / "pq"), id_column="id")
    names = [str(root / "pq" / f"part-{k:05d}.parquet") for k in range(3)]
    assert dataset.shards == tuple(Shard(n, "parquet", a, b) for n, (a, b) in zip(names, parts()))
    np.testing.assert_array_equal(dataset.embeddings, x)
    np.testing.assert_array_equal(dataset.ids, ids)
    np.testing.assert_array_equal(dataset.label_names[dataset.labels], layouts["labels"])
    for shard in dataset.shards:  # each shard's rows are rows start:stop of the dataset
        own = pq.read_table(shard.path)
        np.testing.assert_array_equal(own.column("id").to_numpy(), dataset.ids[shard.start:shard.stop])
    single = load_dataset(str(root / "one.npy"))
    assert isinstance(single.embeddings, np.memmap)  # one NPY file stays a memory map
    assert single.shards == (Shard(str(root / "one.npy"), "npy", 0, ROWS),)


def test_shards_are_read_in_sorted_name_order(tmp_path: Path) -> None:
    for name, value in (("b-2.npy", 2.0), ("a-10.npy", 10.0), ("a-1.npy", 1.0)):
        np.save(tmp_path / name, np.full((2, 3), value, np.float32))
    dataset = load_dataset(str(tmp_path))
    assert dataset.embeddings[:, 0].tolist() == [1.0, 1.0, 10.0, 10.0, 2.0, 2.0]
    assert load_dataset(str(tmp_path / "a-*.npy")).rows == 4


def test_hive_partitions_supply_the_label(run_cli, tmp_path: Path, data) -> None:
    x, labels, ids = data
    for value in range(CLASSES):
        folder = tmp_path / "hive" / f"label={value}"
        folder.mkdir(parents=True)
        keep = labels == value
        pq.write_table(pa.table({"id": ids[keep], "emb": vectors(x[keep])}), folder / "part-0.parquet")
    order = np.concatenate([np.flatnonzero(labels == v) for v in range(CLASSES)])  # label=0/ < label=1/ < ...
    pq.write_table(table(x[order], labels[order], ids[order]), tmp_path / "sorted.parquet")
    dataset = load_dataset(str(tmp_path / "hive"), label_column="label", id_column="id")
    np.testing.assert_array_equal(dataset.ids, ids[order])
    np.testing.assert_array_equal(dataset.label_names[dataset.labels], labels[order])
    got = payload(run_cli, "loss", tmp_path / "hive", "--label-column", "label", "--kind", "triplet")
    want = payload(run_cli, "loss", tmp_path / "sorted.parquet", "--kind", "triplet")
    assert comparable(got) == comparable(want)


def test_parquet_npy_layout_gives_ids_and_labels(run_cli, tmp_path: Path, data) -> None:
    """embedding-reader's parquet_npy: NPY shards, and Parquet metadata with the same stems."""
    x, labels, ids = data
    (tmp_path / "emb" / "metadata").mkdir(parents=True)
    for k, (a, b) in enumerate(parts()):
        np.save(tmp_path / "emb" / f"part-{k}.npy", x[a:b])
        pq.write_table(pa.table({"id": ids[a:b], "label": labels[a:b]}), tmp_path / "emb" / "metadata" / f"part-{k}.parquet")
    dataset = load_dataset(str(tmp_path / "emb"), id_column="id")
    np.testing.assert_array_equal(dataset.embeddings, x)
    np.testing.assert_array_equal(dataset.ids, ids)
    np.testing.assert_array_equal(dataset.label_names[dataset.labels], labels)
    # The same with the metadata beside the NPY files.
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        os.link(tmp_path / "emb" / f"part-{k}.npy", flat / f"part-{k}.npy")
        os.link(tmp_path / "emb" / "metadata" / f"part-{k}.parquet", flat / f"part-{k}.parquet")
    result = run_cli("mine", flat, "--id-column", "id", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert "row-" in result.stdout


def test_one_labels_file_for_a_shard_set(run_cli, tmp_path: Path, data) -> None:
    x, labels, _ = data
    (tmp_path / "s").mkdir()
    for k, (a, b) in enumerate(parts()):
        np.save(tmp_path / "s" / f"part-{k}.npy", x[a:b])
    (tmp_path / "s" / "labels.txt").write_text("".join(f"{v}\n" for v in labels))  # inside: not a shard
    dataset = load_dataset(str(tmp_path / "s"), labels_path=str(tmp_path / "s" / "labels.txt"))
    np.testing.assert_array_equal(dataset.labels is not None and dataset.label_names[dataset.labels], labels)
    # A folder's own sidecar, beside it.
    np.save(tmp_path / "s.labels.npy", labels)
    (tmp_path / "s" / "labels.txt").unlink()
    assert load_dataset(str(tmp_path / "s")).label_source == str(tmp_path / "s.labels.npy")


def error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _copy_npy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_disagreeing_shards_name_the_first_offender(run_cli, layouts, tmp_path: Path) -> None:
    root = layouts["root"]
    wide = _copy_npy(root / "npy", tmp_path / "wide")
    np.save(wide / "part-002.npy", np.zeros((179, DIM + 1), np.float32))
    line = error_line(run_cli("loss", wide))
    assert "part-002.npy" in line and "dimension 9" in line and "part-000.npy has 8" in line

    wider = _copy_npy(root / "npy", tmp_path / "float64")
    np.save(wider / "part-001.npy", np.zeros((1, DIM), np.float64))
    line = error_line(run_cli("inspect", wider))
    assert "part-001.npy" in line and "float64" in line

    unlabelled = _copy_npy(root / "npy", tmp_path / "unlabelled")
    (unlabelled / "part-001.labels.npy").unlink()
    line = error_line(run_cli("mine", unlabelled))
    assert "part-001.npy" in line and "no label sidecar" in line

    short = _copy_npy(root / "npy", tmp_path / "short")
    np.save(short / "part-002.labels.npy", np.zeros(5, np.int64))
    line = error_line(run_cli("loss", short))
    assert "part-002.labels.npy: labels has 5 rows but embeddings has 179" in line

    x, labels, ids = layouts["x"], layouts["labels"], layouts["ids"]
    (tmp_path / "schema").mkdir()
    pq.write_table(table(x[:10], labels[:10], ids[:10]), tmp_path / "schema" / "p0.parquet")
    pq.write_table(table(x[10:], labels[10:], ids[10:]).drop(["label"]), tmp_path / "schema" / "p1.parquet")
    line = error_line(run_cli("eval", tmp_path / "schema"))
    assert "p1.parquet" in line and "'label'" in line

    (tmp_path / "dtype").mkdir()
    pq.write_table(table(x[:10], labels[:10], ids[:10]), tmp_path / "dtype" / "p0.parquet")
    pq.write_table(table(x[10:].astype(np.float64), labels[10:], ids[10:]), tmp_path / "dtype" / "p1.parquet")
    line = error_line(run_cli("check", tmp_path / "dtype", "--require", "rows==300"))
    assert "p1.parquet" in line and "double" in line

    (tmp_path / "ragged").mkdir()
    pq.write_table(table(x[:10], labels[:10], ids[:10], fixed=False), tmp_path / "ragged" / "p0.parquet")
    pq.write_table(table(x[10:, :4], labels[10:], ids[10:], fixed=False), tmp_path / "ragged" / "p1.parquet")
    line = error_line(run_cli("inspect", tmp_path / "ragged"))
    assert "p1.parquet" in line and "row 10 has 4 values" in line


def test_empty_mixed_and_unknown_folders(run_cli, layouts, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "empty: no data files" in error_line(run_cli("inspect", tmp_path / "empty"))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "_SUCCESS").write_bytes(b"")
    assert "found only: _SUCCESS" in error_line(run_cli("loss", tmp_path / "done"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.parquet").write_bytes((layouts["root"] / "one.parquet").read_bytes())
    (mixed / "b.npy").write_bytes((layouts["root"] / "one.npy").read_bytes())
    line = error_line(run_cli("mine", mixed))
    assert "mixes kinds" in line and "a.parquet" in line and "b.npy" in line
    (mixed / "b.npy").unlink()
    (mixed / "notes.bin").write_bytes(b"hello world")
    line = error_line(run_cli("eval", mixed))
    assert "notes.bin: not an NPY, NPZ, Parquet or Arrow IPC file" in line
    assert "no file matches" in error_line(run_cli("inspect", str(tmp_path / "nothing-*.parquet")))


@pytest.mark.parametrize("stream", [False, True], ids=["file-format", "stream-format"])
def test_arrow_on_stdin(run_cli, layouts, tmp_path: Path, stream: bool) -> None:
    x, labels, ids = layouts["x"], layouts["labels"], layouts["ids"]
    write_arrow(tmp_path / "in.arrow", table(x, labels, ids), stream=stream)
    got = payload(run_cli, "loss", "-", input=(tmp_path / "in.arrow").read_bytes())
    want = payload(run_cli, "loss", layouts["root"] / "one.parquet")
    assert comparable(got) == comparable(want)
    assert got["embeddings"]["source"] == "stdin"


def test_fifo_is_read_once_without_seeking(run_cli, layouts, tmp_path: Path) -> None:
    """A named pipe (what <(...) gives) cannot be reopened: its magic is sniffed from the bytes read."""
    want = payload(run_cli, "inspect", layouts["root"] / "one.arrow")
    for name in ("one.arrow", "one.parquet", "one.npy"):
        fifo = tmp_path / f"pipe-{name}"
        os.mkfifo(fifo)
        content = (layouts["root"] / name).read_bytes()

        def feed(path: Path = fifo, body: bytes = content) -> None:
            with open(path, "wb") as sink:
                sink.write(body)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        labels = ["--labels", str(layouts["root"] / "one.labels.npy")] if name.endswith(".npy") else []
        got = payload(run_cli, "inspect", fifo, *labels)
        writer.join(timeout=10)
        assert comparable(got) == comparable(want), name


def _zigzag(n: int) -> bytes:
    value, out = n << 1, b""
    while value >= 0x80:
        out += bytes([(value & 0x7F) | 0x80])
        value >>= 7
    return out + bytes([value])


def lie_in_footer(src: Path, dst: Path, replacements: list[tuple[int, int]]) -> None:
    """Rewrite i64 row counts in a Parquet footer (Thrift compact: field header 0x16 + zigzag varint)."""
    body = src.read_bytes()
    size = struct.unpack("<i", body[-8:-4])[0]
    footer = body[-8 - size:-8]
    for old, new in replacements:
        before, after = b"\x16" + _zigzag(old), b"\x16" + _zigzag(new)
        assert len(before) == len(after) and before in footer
        footer = footer.replace(before, after, 1)
    dst.write_bytes(body[:-8 - size] + footer + body[-8:])


def test_a_lying_parquet_footer_is_an_error_not_garbage_rows(run_cli, layouts, tmp_path: Path) -> None:
    x = layouts["x"]
    honest = tmp_path / "honest.parquet"
    pq.write_table(pa.table({"emb": vectors(x)}), honest, row_group_size=100)  # 3 groups of 100
    # The file-level count says 400: the row groups hold 300.
    lie_in_footer(honest, tmp_path / "total.parquet", [(300, 400)])
    assert pq.ParquetFile(tmp_path / "total.parquet").metadata.num_rows == 400
    line = error_line(run_cli("inspect", tmp_path / "total.parquet"))
    assert "total.parquet" in line and "footer says 400 rows" in line
    # Totals agree (320 = 120 + 100 + 100), but row group 0 holds 100 rows, not 120.
    lie_in_footer(honest, tmp_path / "group.parquet", [(300, 320), (100, 120)])
    line = error_line(run_cli("loss", tmp_path / "group.parquet", "--labels", layouts["root"] / "one.labels.npy"))
    assert "group.parquet: row group 0 holds 100 rows but the footer says 120" in line
    # In a folder, the lying shard is named.
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.parquet").write_bytes(honest.read_bytes())
    (tmp_path / "set" / "b.parquet").write_bytes((tmp_path / "total.parquet").read_bytes())
    assert "b.parquet" in error_line(run_cli("inspect", tmp_path / "set"))


def test_outputs_inside_an_input_folder_are_refused(run_cli, layouts, tmp_path: Path) -> None:
    folder = _copy_npy(layouts["root"] / "npy", tmp_path / "npy")
    before = sorted(p.name for p in folder.iterdir())
    line = error_line(run_cli("mine", folder, "-o", folder / "hard.csv"))
    assert "inside the input" in line
    line = error_line(run_cli("loss", str(folder / "part-*"), "-o", folder / "part-out.csv"))
    assert "inside the input" in line
    assert sorted(p.name for p in folder.iterdir()) == before


def test_library_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no data files"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("case", ["pq", "npy", "arrow", "hf"])
def test_each_shard_can_be_read_alone(layouts, case: str) -> None:
    """What a distributed worker does: read only its shard's rows, by path and row range."""
    from embedkit.shards import read_shard

    dataset = load_dataset(str(layouts["root"] / case))
    assert len(dataset.shards) == 3
    for shard in dataset.shards:
        np.testing.assert_array_equal(read_shard(shard), dataset.embeddings[shard.start:shard.stop])
    moved = Shard(dataset.shards[0].path, dataset.shards[0].kind, 0, dataset.shards[0].rows + 1)
    with pytest.raises(InputError, match="changed since"):
        read_shard(moved)
