"""Issue 5's corpus: every bad input gives exit 2, one `error:` line naming the problem,
no traceback, no output file, and inputs left byte-for-byte unchanged. Plus reader fuzzing."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embedkit.cli.main import app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import EmbedkitError
from embedkit.io import load_dataset

REGISTERED = {c.name for c in app.registered_commands}

# Per command: extra arguments that make a good file succeed (labels come from the sidecar).
COMMAND_ARGS: dict[str, list[str]] = {
    "loss": ["--kind", "contrastive"],
    "mine": ["--strategy", "hard"],
    "eval": [],
    "inspect": [],
    "check": ["--require", "rows>=1"],
}
COMMANDS = [c for c in COMMAND_ARGS if c in REGISTERED]


def write_good(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    np.save(folder / "good.npy", x)
    np.save(folder / "good.labels.npy", np.arange(12) % 3)
    return folder / "good.npy"


def make_case(folder: Path, name: str) -> tuple[Path, str]:
    """Write the bad embeddings file for case ``name``; return it and a fragment the error must contain."""
    path = folder / f"{name}.npy"
    labels = np.arange(6) % 2
    if name == "missing":
        return folder / "missing.npy", "no such file"
    if name == "empty":
        path.write_bytes(b"")
        return path, "not an NPY, NPZ, Parquet or Arrow IPC file"
    if name == "truncated":
        np.save(path, np.ones((50, 8), np.float32))
        path.write_bytes(path.read_bytes()[:300])
        return path, "not a valid NPY file"
    if name == "text_named_npy":
        path.write_text("1,2,3\n4,5,6\n")
        return path, "not an NPY, NPZ, Parquet or Arrow IPC file"
    if name == "garbage_named_parquet":
        path = folder / "garbage.parquet"
        path.write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
        return path, "not a readable Parquet file"
    if name == "one_d":
        np.save(path, np.ones(6, np.float32))
        return path, "2-D"
    if name == "three_d":
        np.save(path, np.ones((6, 2, 2), np.float32))
        return path, "2-D"
    if name == "pickled":
        np.save(path, np.array([[1.0, "x"]] * 6, dtype=object), allow_pickle=True)
        return path, "pickled object array"
    if name == "nan":
        x = np.ones((6, 3), np.float32)
        x[2, 1] = np.nan
        np.save(path, x)
        np.save(folder / f"{name}.labels.npy", labels)
        return path, "row 2 has NaN or Inf"
    if name == "inf":
        x = np.ones((6, 3), np.float64)
        x[5, 0] = -np.inf
        np.save(path, x)
        np.save(folder / f"{name}.labels.npy", labels)
        return path, "row 5 has NaN or Inf"
    if name == "integers":
        np.save(path, np.ones((6, 3), np.int32))
        return path, "float16, float32 or float64; found int32"
    if name == "strings":
        np.save(path, np.full((6, 3), "a"))
        return path, "float16, float32 or float64"
    if name == "ragged_parquet":
        path = folder / "ragged.parquet"
        pq.write_table(pa.table({"emb": pa.array([[1.0, 2.0]] * 5 + [[1.0]])}), path)
        return path, "ragged"
    if name == "wrong_label_count":
        np.save(path, np.ones((6, 3), np.float32))
        np.save(folder / f"{name}.labels.npy", np.arange(4))
        return path, "labels has 4 rows but embeddings has 6"
    raise AssertionError(name)


CASES = ["missing", "empty", "truncated", "text_named_npy", "garbage_named_parquet", "one_d", "three_d",
         "pickled", "nan", "inf", "integers", "strings", "ragged_parquet", "wrong_label_count"]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_clean_failure(result, fragment: str, folder: Path, before: dict[str, str]) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert digest(folder) == before, "an input changed or an output appeared"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_bad_embeddings(run_cli, tmp_path: Path, command: str, case: str) -> None:
    if case in ("nan", "inf") and command in ("inspect", "check"):
        pytest.skip("inspect reports non-finite rows and check gates on them: see test_non_finite_rows_*")
    path, fragment = make_case(tmp_path, case)
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], path)
    assert_clean_failure(result, fragment, tmp_path, before)
    if case != "missing":
        assert path.name in result.stderr or "stdin" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_output_in_missing_folder_and_output_equal_to_input(run_cli, tmp_path: Path, command: str) -> None:
    if command in ("check", "inspect", "eval"):
        pytest.skip(f"{command} writes no per-item table")
    good = write_good(tmp_path)
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], good, "-o", tmp_path / "nowhere" / "out.csv")
    assert_clean_failure(result, "does not exist", tmp_path, before)
    result = run_cli(command, *COMMAND_ARGS[command], good, "-o", good)
    assert_clean_failure(result, "also an input", tmp_path, before)
    result = run_cli(command, *COMMAND_ARGS[command], good, "-o", tmp_path / "good.labels.npy")
    assert result.exit_code == 2


PAIR_TABLES = {
    "missing_column": ("i,y\n0,1\n", "missing column(s) j"),
    "out_of_range": ("i,j,y\n0,12,1\n", "j=12, outside 0..11"),
    "negative_index": ("i,j,y\n-1,2,1\n", "i=-1, outside 0..11"),
    "label_not_binary": ("i,j,y\n0,1,2\n", "y=2; expected 0 (dissimilar) or 1 (similar)"),
    "float_index": ("i,j,y\n0.5,1,1\n", "must hold integers"),
    "empty_table": ("i,j,y\n", "no rows"),
}


@pytest.mark.parametrize("case", sorted(PAIR_TABLES))
def test_bad_pairs_tables(run_cli, tmp_path: Path, case: str) -> None:
    good = write_good(tmp_path)
    text, fragment = PAIR_TABLES[case]
    (tmp_path / "pairs.csv").write_text(text)
    before = digest(tmp_path)
    result = run_cli("loss", "--pairs", tmp_path / "pairs.csv", good)
    assert_clean_failure(result, fragment, tmp_path, before)
    assert "pairs.csv" in result.stderr


@pytest.mark.parametrize("text,fragment", [
    ("anchor,positive\n0,3\n", "missing column(s) negative"),
    ("anchor,positive,negative\n0,3,99\n", "negative=99, outside 0..11"),
    ("anchor,positive,negative\n0,0,1\n", "anchor == positive"),
    ("anchor,positive,negative\n0,1,2\n", "has another label than anchor"),
])
def test_bad_triplets_tables(run_cli, tmp_path: Path, text: str, fragment: str) -> None:
    good = write_good(tmp_path)
    (tmp_path / "t.csv").write_text(text)
    before = digest(tmp_path)
    result = run_cli("loss", "--kind", "triplet", "--triplets", tmp_path / "t.csv", good)
    assert_clean_failure(result, fragment, tmp_path, before)


@pytest.mark.parametrize("args,fragment", [
    (["--margin", "-0.5"], "--margin must be a finite number >= 0"),
    (["--kind", "infonce", "--temperature", "0"], "--temperature must be > 0"),
    (["--kind", "supcon", "--temperature", "-1"], "--temperature must be > 0"),
    (["--kind", "nope"], "nope"),
    (["--reduction", "median"], "median"),
    (["--margin", "abc"], "'--margin'"),
    (["--trace", "-1"], "'--trace'"),
    (["-o", "out.txt"], "unknown output format"),
])
def test_invalid_option_values(tmp_path: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Through main(), as the console script runs: Typer's own usage errors are one line too."""
    from embedkit.cli.main import main

    good = write_good(tmp_path)
    before = digest(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["loss", *args, str(good)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], captured.err
    assert digest(tmp_path) == before


def test_only_one_input_from_stdin(run_cli, tmp_path: Path) -> None:
    result = run_cli("loss", "--kind", "triplet", "--triplets", "-", "-", input=b"")
    assert result.exit_code == 2 and "only one input can be read from stdin" in result.stderr


# -- fuzzing the readers: any bytes give a Dataset or an EmbedkitError, nothing else ----------


def load_bytes(data: bytes, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        load_dataset(str(path))
    except EmbedkitError:
        pass
    try:
        load_dataset("-", stdin=io.BytesIO(data))
    except EmbedkitError:
        pass


header_values = st.one_of(
    st.text(max_size=12), st.integers(-5, 10**12), st.booleans(), st.none(),
    st.tuples(st.integers(-3, 50), st.integers(-3, 50)), st.tuples(), st.tuples(st.integers(0, 40)),
    st.sampled_from(["<f4", "<f8", "<f2", "|O", "<i8", "<U3", "|V4", "<c16", "bogus", "<f4,<f4"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(descr=header_values, fortran=header_values, shape=header_values, payload=st.binary(max_size=200),
       version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"]))
def test_fuzzed_npy_headers_never_crash(tmp_path: Path, descr, fortran, shape, payload: bytes, version: bytes) -> None:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1", "replace")
    header = header + b" " * (-(len(header) + 11) % 64) + b"\n"
    length = len(header).to_bytes(2 if version == b"\x01\x00" else 4, "little")
    load_bytes(b"\x93NUMPY" + version + length + header + payload, tmp_path, "fuzz.npy")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x93NUMPY", b"PAR1", b"PK\x03\x04"]))
def test_fuzzed_bytes_never_crash(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    load_bytes(prefix + data, tmp_path, "fuzz.bin")


arrow_types = st.sampled_from([
    pa.int64(), pa.float32(), pa.float64(), pa.string(), pa.bool_(), pa.list_(pa.float32()), pa.list_(pa.int32()),
    pa.list_(pa.float64(), 3), pa.list_(pa.float16()), pa.large_list(pa.float32()), pa.list_(pa.string()),
    pa.struct([("a", pa.float32())]), pa.list_(pa.list_(pa.float32())),
])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(types=st.lists(arrow_types, min_size=1, max_size=3), rows=st.integers(0, 5), nulls=st.booleans(),
       names=st.lists(st.sampled_from(["label", "emb", "x", "id"]), min_size=3, max_size=3, unique=True))
def test_fuzzed_parquet_schemas_never_crash(tmp_path: Path, types, rows: int, nulls: bool, names) -> None:
    rng = np.random.default_rng(rows)
    columns = {}
    for name, kind in zip(names, types):
        values = []
        for r in range(rows):
            if nulls and r == 1:
                values.append(None)
                continue
            width = 3 if (pa.types.is_fixed_size_list(kind)) else int(rng.integers(0, 4))
            if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
                inner = kind.value_type
                if pa.types.is_list(inner):
                    values.append([[1.0] * width])
                elif pa.types.is_string(inner):
                    values.append(["a"] * width)
                elif pa.types.is_integer(inner):
                    values.append([1] * width)
                else:
                    values.append([float(v) for v in rng.standard_normal(width)])
            elif pa.types.is_struct(kind):
                values.append({"a": 1.0})
            elif pa.types.is_string(kind):
                values.append("s")
            elif pa.types.is_boolean(kind):
                values.append(True)
            elif pa.types.is_integer(kind):
                values.append(r)
            else:
                values.append(float(r))
        columns[name] = pa.array(values, type=kind)
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    load_bytes(buffer.getvalue(), tmp_path, "fuzz.parquet")


# -- invalid option values of mine, eval, check and inspect ----------------------------------

OPTION_CASES = [
    ("mine", ["--strategy", "hard", "--negatives", "0"], "--negatives must be >= 1; got 0"),
    ("mine", ["--strategy", "semi-hard", "--margin", "-1"], "--margin must be a finite number >= 0; got -1.0"),
    ("mine", ["--strategy", "within-margin", "--margin", "inf"], "--margin must be a finite number >= 0"),
    ("mine", ["--strategy", "hard", "--batch-size", "0"], "--batch-size must be >= 2; got 0"),
    ("mine", ["--strategy", "hard", "--index", "bogus"], "'bogus' is not one of 'exact', 'hnsw', 'ivf', 'auto'"),
    ("mine", ["--strategy", "bogus"], "'bogus' is not one of"),
    ("mine", ["--strategy", "hard", "--positives-count", "0"], "--positives-count must be >= 1; got 0"),
    ("mine", ["--strategy", "hard", "--index", "ivf", "--nlist", "0"], "--nlist must be >= 1; got 0"),
    ("mine", ["--strategy", "hard", "--index", "ivf", "--nprobe", "0"], "--nprobe must be >= 1; got 0"),
    ("mine", ["--strategy", "hard", "--index", "hnsw", "--ef-search", "0"], "--ef-search must be >= 1; got 0"),
    ("mine", ["--strategy", "hard", "--max-items", "0"], "--max-items must be >= 1; got 0"),
    ("mine", ["--strategy", "hard", "--budget-mib", "0"], "--budget-mib must be > 0"),
    ("mine", ["--strategy", "hard", "--check-recall", "-1"], "'--check-recall'"),
    ("mine", ["--strategy", "hard", "--metric", "manhattan"], "'manhattan' is not one of 'euclidean', 'cosine'"),
    ("mine", ["--strategy", "hard", "--workers", "0"], "'--workers'"),
    ("mine", ["--strategy", "hard", "--json", "-o", "-"], "--json and -o - would both write to stdout"),
    ("eval", ["--k", "0"], "--k: '0' is not a whole number >= 1"),
    ("eval", ["--k", "1,x"], "--k: 'x' is not a whole number >= 1"),
    ("eval", ["--k", "-1"], "--k: '-1' is not a whole number >= 1"),
    ("eval", ["--k", "1.5"], "--k: '1.5' is not a whole number >= 1"),
    ("eval", ["--k", "²"], "--k: '²' is not a whole number >= 1"),  # isdigit() but not int(): was a traceback
    ("eval", ["--k", ","], "--k: no values given"),
    ("eval", ["--metric", "bogus"], "'bogus' is not one of 'euclidean', 'cosine'"),
    ("eval", ["--reference", "x.npy"], "give the reference set as EMB or as --reference, not both"),
    ("check", ["-r", "precision_at_1=>0.9"], "--require 'precision_at_1=>0.9': malformed requirement"),
    ("check", ["-r", "precison_at_1>=0.9"], "did you mean precision_at_1?"),
    ("check", ["-r", "rows>=nan"], "the value must be a finite number"),
    ("check", [], "nothing to check"),
    ("check", ["-r", "rows>=1", "--margin", "-1"], "--margin must be a finite number >= 0"),
    ("check", ["-r", "rows>=1", "--temperature", "0"], "--temperature must be > 0"),
    ("check", ["-r", "rows>=1", "--sample", "0"], "'--sample'"),
    ("check", ["-r", "rows>=1", "--exact-pairs", "-1"], "'--exact-pairs'"),
    ("check", ["-r", "rows>=1", "--max-drop", "precision_at_1=0.1"], "--max-drop compares with a previous export"),
    ("check", ["-r", "rows>=1", "--max-drop", "rows=1"], "rows has no better direction"),
    ("check", ["-r", "rows>=1", "--scale", "nan"], "--scale must be finite"),
    ("check", ["-r", "rows>=1", "--form", "bogus"], "'bogus' is not one of 'squared', 'halved', 'linear'"),
    ("inspect", ["--bins", "0"], "'--bins'"),
    ("inspect", ["--bins", "1000"], "'--bins'"),
    ("inspect", ["--sample", "0"], "'--sample'"),
    ("inspect", ["--exact-pairs", "-5"], "'--exact-pairs'"),
    ("inspect", ["--seed", "x"], "'--seed'"),
]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the console-script entry point in-process; ``(exit code, stdout, stderr)``."""
    from embedkit.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def assert_one_error_line(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("command,args,fragment", OPTION_CASES, ids=[" ".join([c, *a]) for c, a, _ in OPTION_CASES])
def test_invalid_option_values_of_every_command(tmp_path: Path, command: str, args: list[str], fragment: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    good = write_good(tmp_path)
    before = digest(tmp_path)
    code, out, err = run_main([command, *args, str(good)], capsys)
    assert_one_error_line(code, out, err, fragment)
    assert digest(tmp_path) == before


# -- bad --labels files, and a Parquet label column with nulls -----------------------------------


def make_labels_case(folder: Path, name: str) -> tuple[str, str]:
    """Write the bad labels file for case ``name``; return its name and a fragment the error must contain."""
    path = folder / name
    if name == "short.npy":
        np.save(path, np.arange(5))
        return name, "labels has 5 rows but embeddings has 12"
    if name == "empty.txt":
        path.write_text("")
        return name, "labels file is empty"
    if name == "blank_line.txt":
        path.write_text("0\n1\n\n2\n" + "".join(f"{i % 3}\n" for i in range(8)))
        return name, "line 3 is empty; expected one label per line"
    if name == "labels.npz":
        np.savez(path, labels=np.arange(12) % 3)
        return name, "labels as NPZ are not supported"
    if name == "two_d.npy":
        np.save(path, np.zeros((12, 2), np.int64))
        return name, "labels must be 1-D; found shape (12, 2)"
    if name == "pickled.npy":
        np.save(path, np.array([None] * 12, dtype=object), allow_pickle=True)
        return name, "pickled object array; expected a 1-D array of integer or string labels"
    if name == "fractional.npy":
        np.save(path, np.arange(12) / 2.0)
        return name, "float labels must be whole numbers"
    if name == "binary.txt":
        path.write_bytes(bytes(range(256)))
        return name, "neither NPY, Parquet nor UTF-8 text"
    if name == "commas.csv":
        path.write_text("label,x\n" + "".join(f"{i % 3},1\n" for i in range(12)))
        return name, "expected one label per line, found commas"
    if name == "nulls.parquet":
        pq.write_table(pa.table({"label": pa.array([0, 1, None] * 4)}), path)
        return name, "column 'label' has null values (first at row 2)"
    if name == "missing.txt":
        return name, "no such file"
    raise AssertionError(name)


LABEL_CASES = ["short.npy", "empty.txt", "blank_line.txt", "labels.npz", "two_d.npy", "pickled.npy", "fractional.npy",
               "binary.txt", "commas.csv", "nulls.parquet", "missing.txt"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", LABEL_CASES)
def test_bad_labels_files(run_cli, tmp_path: Path, command: str, case: str) -> None:
    good = write_good(tmp_path)
    name, fragment = make_labels_case(tmp_path, case)
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], "--labels", tmp_path / name, good)
    assert_clean_failure(result, fragment, tmp_path, before)
    assert name in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", [pa.int64(), pa.string()])
def test_parquet_label_column_with_nulls(run_cli, tmp_path: Path, command: str, kind: pa.DataType) -> None:
    rng = np.random.default_rng(0)
    values = [0, 1, None] * 4 if kind == pa.int64() else ["a", "b", None] * 4
    table = pa.table({"emb": pa.array(rng.standard_normal((12, 4)).tolist(), pa.list_(pa.float32())),
                      "label": pa.array(values, kind)})
    pq.write_table(table, tmp_path / "nulls.parquet")
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], tmp_path / "nulls.parquet")
    assert_clean_failure(result, "nulls.parquet: column 'label' has null values (first at row 2)", tmp_path, before)


# -- report files of check (--junit) and inspect (--plot) ------------------------------------


def report_option(command: str) -> list[str]:
    if command == "inspect":
        pytest.importorskip("matplotlib")
        return ["--plot"]
    return ["--junit"]


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_report_file_in_missing_folder_or_equal_to_an_input(run_cli, tmp_path: Path, command: str) -> None:
    option = report_option(command)
    good = write_good(tmp_path)
    (tmp_path / "other.labels.txt").write_text("".join(f"{i % 3}\n" for i in range(12)))
    base = [command, *COMMAND_ARGS[command], good]
    before = digest(tmp_path)
    result = run_cli(*base, *option, tmp_path / "nowhere" / "report.out")
    assert_clean_failure(result, "output folder", tmp_path, before)
    assert "nowhere" in result.stderr
    # The embeddings, their sidecar labels (which used to be overwritten), and a --labels file.
    for target, extra in [(good, []), (tmp_path / "good.labels.npy", []),
                          (tmp_path / "other.labels.txt", ["--labels", tmp_path / "other.labels.txt"])]:
        result = run_cli(*base, *extra, *option, target)
        assert_clean_failure(result, "output path is also an input; refusing to overwrite it", tmp_path, before)
        assert target.name in result.stderr
    result = run_cli(*base, *option, tmp_path)
    assert_clean_failure(result, "is a directory", tmp_path, before)


def test_junit_equal_to_the_baseline_or_its_labels(run_cli, tmp_path: Path) -> None:
    good = write_good(tmp_path)
    old = tmp_path / "old.npy"
    old.write_bytes(good.read_bytes())
    np.save(tmp_path / "old.labels.npy", np.arange(12) % 3)
    before = digest(tmp_path)
    for target in (old, tmp_path / "old.labels.npy"):
        result = run_cli("check", good, "--baseline", old, "--max-drop", "precision_at_1=0.1", "--junit", target)
        assert_clean_failure(result, "output path is also an input", tmp_path, before)


# -- pairs/triplets tables on stdin that are not tables ------------------------------------------

STDIN_TABLES = {
    "empty": (b"", "stdin: no data (expected a CSV, JSON-lines or Parquet table; give a file path, or pipe the data in)"),
    "binary": (bytes(range(1, 256)) * 3, "stdin: "),
    "npy": (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}", "stdin: is an NPY/NPZ stream; expected a CSV, JSON-lines"),
    "npz": (b"PK\x03\x04" + bytes(40), "stdin: is an NPY/NPZ stream"),
    "broken_parquet": (b"PAR1" + bytes(range(100)) + b"PAR1", "stdin: not a readable PARQUET table"),
    "broken_jsonl": (b'{"i": 0, "j": \n{oops}\n', "stdin: not a readable JSONL table"),
    "ragged_csv": (b"i,j,y\n0,1\n", "stdin: not a readable CSV table"),
    "text": (b"hello world\n1\n2\n", "stdin: missing column(s)"),
}


@pytest.mark.parametrize("kind", ["pairs", "triplets"])
@pytest.mark.parametrize("case", sorted(STDIN_TABLES))
def test_garbage_table_on_stdin(run_cli, tmp_path: Path, kind: str, case: str) -> None:
    good = write_good(tmp_path)
    data, fragment = STDIN_TABLES[case]
    before = digest(tmp_path)
    loss = "contrastive" if kind == "pairs" else "triplet"
    result = run_cli("loss", "--kind", loss, f"--{kind}", "-", good, "-o", tmp_path / "items.csv", input=data)
    assert_clean_failure(result, fragment, tmp_path, before)


# -- check's requirement parser, fuzzed through the command line --------------------------------

requirement_texts = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda name, op, value, pad: f"{pad}{name}{pad}{op}{pad}{value}{pad}",
        st.sampled_from(["rows", "nan_rows", "precision_at_1", "recall_at_3", "recall_at_0", "recall_at_", "map_at_r",
                         "contrastive_loss", "suggested_margin", "precison_at_1", "", "1rows", "rows x"]),
        st.sampled_from([">=", "<=", ">", "<", "==", "=", "=>", "=<", "!=", ">>", "", "≥"]),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6),
                  st.sampled_from(["1e400", "-0", "0x10", "1_0", "²", "."])),
        st.sampled_from(["", " ", "\t", "\n"]),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=requirement_texts)
def test_fuzzed_requirements_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Never a traceback: a requirement the parser refuses is exit 2 with one `error: --require` line;
    one it accepts is judged (exit 0 or 1)."""
    from embedkit.checks import parse_requirement

    good = tmp_path / "good.npy"
    if not good.exists():
        write_good(tmp_path)
    try:
        parse_requirement(text)
        accepted = True
    except EmbedkitError:
        accepted = False
    code, out, err = run_main(["check", f"--require={text}", str(good)], capsys)
    assert "Traceback" not in out + err
    if accepted:
        assert code in (0, 1), (text, code, err)
    else:
        assert_one_error_line(code, out, err, "--require")


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_output_folder_fails_before_the_work(run_cli, tmp_path: Path, command: str) -> None:
    """A folder where no file can be created (here /proc): exit 2, one line, before computing."""
    good = write_good(tmp_path)
    if command == "inspect":
        pytest.importorskip("matplotlib")
    option = {"check": ["--junit", "/proc/out.xml"], "inspect": ["--plot", "/proc/out.png"],
              "eval": None}.get(command, ["-o", "/proc/out.csv"])
    if option is None:
        pytest.skip(f"{command} writes no output file")
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], good, *option)
    assert_clean_failure(result, "cannot write in folder /proc", tmp_path, before)
