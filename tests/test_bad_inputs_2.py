"""Issue 10's corpus: lying files, special outputs, odd encodings, signals, option extremes,
bounded work. Each bad case: exit 2, one `error:` line, no traceback, inputs untouched,
no output or temporary file left behind. Device cases use scratch `mknod` nodes only."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from embedkit.cli.main import app

from embedkit.io import load_dataset
from embedkit.output import remove_stale_partials
from embedkit.repeated_rows import exact_duplicates

REGISTERED = {c.name for c in app.registered_commands}
COMMAND_ARGS: dict[str, list[str]] = {
    "loss": ["--kind", "contrastive"],
    "mine": ["--strategy", "hard"],
    "eval": [],
    "inspect": [],
    "check": ["--require", "rows>=1"],
}
COMMANDS = [c for c in COMMAND_ARGS if c in REGISTERED]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write_good(folder: Path, rows: int = 12, dim: int = 4) -> Path:
    rng = np.random.default_rng(0)
    np.save(folder / "good.npy", rng.standard_normal((rows, dim)).astype(np.float32))
    np.save(folder / "good.labels.npy", np.arange(rows) % 3)
    return folder / "good.npy"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_clean_failure(result, fragment: str, folder: Path, before: dict[str, str]) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert digest(folder) == before, "an input changed or an output appeared"
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".partial")], "a temporary file was left"


def ok(result) -> dict:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- outputs: special files ---------------------------------------------------------------------

def _reader(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as handle:
            into.append(handle.read())
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_fifo_output_is_written_in_place_not_replaced(run_cli, tmp_path: Path, suffix: str) -> None:
    good = write_good(tmp_path)
    fifo = tmp_path / f"items{suffix}"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _reader(fifo, got)
    result = run_cli("mine", "-s", "hard", str(good), "-o", str(fifo), "--json")
    thread.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert got and len(got[0]) > 0
    if suffix == ".csv":
        assert got[0].decode().splitlines()[0].replace('"', "").startswith("anchor,positive,negative")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.skipif(not IS_ROOT, reason="mknod of character devices needs root")
def test_char_device_outputs_are_never_replaced(run_cli, tmp_path: Path) -> None:
    good = write_good(tmp_path)
    null = tmp_path / "null.xml"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a scratch /dev/null
    result = run_cli("check", str(good), "-r", "rows>=1", "--junit", str(null))
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode), "--junit replaced a character device"
    out = tmp_path / "null.csv"
    os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert run_cli("mine", "-s", "hard", str(good), "-o", str(out)).exit_code == 0
    assert stat.S_ISCHR(os.stat(out).st_mode)


@pytest.mark.skipif(not IS_ROOT, reason="mknod of character devices needs root")
@pytest.mark.parametrize("how", ["junit", "mine-csv", "mine-parquet", "loss-jsonl"])
def test_full_device_output_is_one_error_line(run_cli, tmp_path: Path, how: str) -> None:
    good = write_good(tmp_path)
    suffix = {"junit": ".xml", "mine-csv": ".csv", "mine-parquet": ".parquet", "loss-jsonl": ".jsonl"}[how]
    full = tmp_path / f"full{suffix}"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a scratch /dev/full
    before = digest(tmp_path)
    args = {"junit": ["check", str(good), "-r", "rows>=1", "--junit", str(full)],
            "mine-csv": ["mine", "-s", "hard", str(good), "-o", str(full)],
            "mine-parquet": ["mine", "-s", "hard", str(good), "-o", str(full)],
            "loss-jsonl": ["loss", "--kind", "contrastive", str(good), "-o", str(full)]}[how]
    result = run_cli(*args)
    assert_clean_failure(result, "No space left on device", tmp_path, before)
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_socket_output_is_refused(run_cli, tmp_path: Path) -> None:
    import socket

    good = write_good(tmp_path)
    path = tmp_path / "s.csv"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        before = digest(tmp_path)
        result = run_cli("mine", "-s", "hard", str(good), "-o", str(path))
        assert_clean_failure(result, "is a socket", tmp_path, before)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        server.close()


# -- outputs: stale temporary files -------------------------------------------------------------

def _dead_pid() -> int:
    for pid in range(4_000_000, 3_000_000, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.skip("no free pid found")


def test_stale_partials_of_dead_writers_are_removed_and_others_kept(run_cli, tmp_path: Path) -> None:
    good = write_good(tmp_path)
    dead = tmp_path / f".items.csv.{_dead_pid()}.abcd_123.partial"
    alive = tmp_path / f".items.csv.{os.getppid()}.zzzz9999.partial"  # a concurrent run still writing
    legacy_old = tmp_path / ".items.csv.k2j4h5g6.partial"  # 0.1's name, an hour old
    legacy_new = tmp_path / ".other.csv.q1w2e3r4.partial"  # 0.1's name, just written
    not_ours = tmp_path / ".notes.partial"
    for path in (dead, alive, legacy_old, legacy_new, not_ours):
        path.write_text("x")
    old = time.time() - 7200
    os.utime(legacy_old, (old, old))
    result = run_cli("mine", "-s", "hard", str(good), "-o", str(tmp_path / "items.csv"))
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in names and legacy_old.name not in names
    assert {alive.name, legacy_new.name, not_ours.name, "items.csv"} <= names


def test_stale_partial_of_a_reused_pid_is_removed(tmp_path: Path) -> None:
    # Our parent is alive but started long before this file was last written? No: the file is
    # older than the process holding its pid, so that process cannot be its writer.
    me = os.getpid()
    stale = tmp_path / f".x.csv.{os.getppid()}.aaaa0000.partial"
    stale.write_text("x")
    os.utime(stale, (0, 0))  # written in 1970, before any running process started
    keep = tmp_path / f".x.csv.{me}.bbbb1111.partial"  # this very process: never removed
    keep.write_text("x")
    assert remove_stale_partials(tmp_path) == [stale.name]
    assert keep.exists()


# -- signals ------------------------------------------------------------------------------------

def _catches(pid: int, signum: int) -> bool:
    """Does process ``pid`` have a handler for ``signum`` (Linux /proc SigCgt mask)?"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (signum - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", ["SIGHUP", "SIGQUIT"])
def test_sighup_and_sigquit_end_like_sigterm(tmp_path: Path, name: str) -> None:
    signum = getattr(signal, name)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.standard_normal((60000, 64)).astype(np.float32))
    np.save(tmp_path / "e.labels.npy", rng.integers(0, 100, 60000))
    before = sorted(p.name for p in tmp_path.iterdir())
    code = "import sys; from embedkit.cli.main import main; main(sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", code, "mine", "e.npy", "--strategy", "semi-hard",
                                "--select", "all", "-o", "t.parquet", "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    # Wait until main() has installed its handlers (the import window is another issue's).
    deadline = time.monotonic() + 60
    while not _catches(process.pid, signum) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err.decode()
    assert "Traceback" not in err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a partial output was left behind"


# -- labels -------------------------------------------------------------------------------------

def classes(run_cli, good: Path, labels: Path | str, *, stdin: bytes | None = None) -> dict:
    payload = ok(run_cli("inspect", str(good), "--labels", str(labels), "--json", input=stdin))
    return payload["labels"]


@pytest.mark.parametrize("text,expected", [
    ("\ufeff0\n1\n2\n" + "".join(f"{i % 3}\n" for i in range(9)), 3),            # BOM
    ("\ufefflabel\n" + "".join(f"{i % 3}\n" for i in range(12)), 3),             # BOM + header
    ("".join(f"{i % 3}\r\n" for i in range(12)), 3),                             # CRLF
    ("label\r" + "".join(f"{i % 3}\r" for i in range(12)), 3),                  # old Mac CR
    ('"label"\n' + "".join(f'"c,{i % 3}"\n' for i in range(12)), 3),            # quoted, with commas
    ("".join(f"{2**64 + i % 4}\n" for i in range(12)), 4),                       # beyond int64
    ("".join(f"{-(2**63) - 1 - i % 2}\n" for i in range(12)), 2),                # below int64
    ("".join(f"{10**40 + i % 6}\n" for i in range(12)), 6),                      # 134-bit integers
    ("".join(f"{['1e300', '2e300', '1E300'][i % 3]}\n" for i in range(12)), 3),  # float text stays text
])
def test_text_labels_are_read_exactly(run_cli, tmp_path: Path, text: str, expected: int) -> None:
    good = write_good(tmp_path)
    (tmp_path / "l.txt").write_bytes(text.encode())
    assert classes(run_cli, good, tmp_path / "l.txt")["classes"] == expected
    # The same bytes on stdin decode the same way.
    assert classes(run_cli, good, "-", stdin=text.encode())["classes"] == expected


def test_canonical_big_integers_are_one_class(run_cli, tmp_path: Path) -> None:
    good = write_good(tmp_path)
    big = 2**70
    (tmp_path / "l.txt").write_text("".join(f"{['+', '', '0'][i % 3]}{big + i % 2}\n" for i in range(12)))
    assert classes(run_cli, good, tmp_path / "l.txt")["classes"] == 2


@pytest.mark.parametrize("values,expected", [
    (np.array([1e300, 2e300, 3e300] * 4), 3),
    (np.array([2.0**63, 2.0**64, -(2.0**64)] * 4), 3),
    (np.array([2**64 - 1, 2**63, 0] * 4, dtype=np.uint64), 3),
])
def test_huge_numeric_labels_stay_distinct(run_cli, tmp_path: Path, values: np.ndarray, expected: int) -> None:
    good = write_good(tmp_path)
    np.save(tmp_path / "l.npy", values)
    assert classes(run_cli, good, tmp_path / "l.npy")["classes"] == expected
    pq.write_table(pa.table({"label": values}), tmp_path / "l.parquet")
    assert classes(run_cli, good, tmp_path / "l.parquet")["classes"] == expected


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("via", ["path", "stdin"])
def test_non_utf8_labels_refused_the_same_way_from_path_and_stdin(run_cli, tmp_path: Path, command: str,
                                                                   via: str) -> None:
    good = write_good(tmp_path)
    data = "".join(f"caf\u00e9{i % 3}\n" for i in range(12)).encode("latin-1")
    (tmp_path / "l.txt").write_bytes(data)
    before = digest(tmp_path)
    target = str(tmp_path / "l.txt") if via == "path" else "-"
    result = run_cli(command, *COMMAND_ARGS[command], str(good), "--labels", target,
                     input=data if via == "stdin" else None)
    assert_clean_failure(result, "neither NPY, Parquet nor UTF-8 text", tmp_path, before)
    assert ("stdin" if via == "stdin" else "l.txt") in result.stderr


@pytest.mark.parametrize("kind", ["struct", "list", "binary", "large_binary", "fixed_binary", "map", "null"])
@pytest.mark.parametrize("role", ["label", "id"])
def test_non_scalar_label_and_id_columns_refused(run_cli, tmp_path: Path, kind: str, role: str) -> None:
    rows = 12
    column = {
        "struct": pa.array([{"a": i % 3} for i in range(rows)]),
        "list": pa.array([[i % 3] for i in range(rows)], type=pa.list_(pa.int64())),
        "binary": pa.array([bytes([i % 3]) for i in range(rows)], type=pa.binary()),
        "large_binary": pa.array([bytes([i % 3]) for i in range(rows)], type=pa.large_binary()),
        "fixed_binary": pa.array([bytes([i % 3, 0]) for i in range(rows)], type=pa.binary(2)),
        "map": pa.array([[("k", i % 3)] for i in range(rows)], type=pa.map_(pa.string(), pa.int64())),
        "null": pa.nulls(rows),
    }[kind]
    emb = pa.array(np.random.default_rng(0).standard_normal((rows, 4)).astype(np.float32).tolist(),
                   type=pa.list_(pa.float32(), 4))
    other = pa.array(np.arange(rows) % 3)
    table = pa.table({"emb": emb, "label": column if role == "label" else other, "rid": column})
    pq.write_table(table, tmp_path / "e.parquet")
    before = digest(tmp_path)
    args = ["inspect", str(tmp_path / "e.parquet"), "--column", "emb"]
    if role == "id":
        args = ["mine", "-s", "hard", str(tmp_path / "e.parquet"), "--column", "emb", "--id-column", "rid"]
    result = run_cli(*args)
    assert_clean_failure(result, "column '", tmp_path, before)


def test_duplicate_column_names_refused(run_cli, tmp_path: Path) -> None:
    good = write_good(tmp_path)
    rows = 12
    emb = pa.array(np.ones((rows, 4), np.float32).tolist(), type=pa.list_(pa.float32(), 4))
    pq.write_table(pa.Table.from_arrays([emb, pa.array(np.arange(rows) % 2), pa.array(np.arange(rows) % 3)],
                                        names=["emb", "label", "label"]), tmp_path / "dup.parquet")
    (tmp_path / "pairs.csv").write_text("i,j,y,j\n0,1,1,2\n1,2,0,3\n")
    pq.write_table(pa.Table.from_arrays([pa.array([0, 1]), pa.array([1, 2]), pa.array([2, 3])],
                                        names=["i", "j", "j"]), tmp_path / "pairs.parquet")
    before = digest(tmp_path)
    assert_clean_failure(run_cli("inspect", str(tmp_path / "dup.parquet")), "duplicate column name(s) label",
                         tmp_path, before)
    for name in ("pairs.csv", "pairs.parquet"):
        result = run_cli("loss", "--kind", "contrastive", "--pairs", str(tmp_path / name), str(good))
        assert_clean_failure(result, "duplicate column name(s) j", tmp_path, before)


@pytest.mark.parametrize("kind", ["timestamp", "date", "time", "decimal"])
def test_unusual_ids_written_to_jsonl(run_cli, tmp_path: Path, kind: str) -> None:
    rows = 12
    start = dt.datetime(2024, 1, 1, 12, 0)
    ids = {
        "timestamp": pa.array([start + dt.timedelta(minutes=i) for i in range(rows)], type=pa.timestamp("us")),
        "date": pa.array([start.date() + dt.timedelta(days=i) for i in range(rows)]),
        "time": pa.array([dt.time(12, i) for i in range(rows)]),
        "decimal": pa.array([__import__("decimal").Decimal(f"{i}.5") for i in range(rows)]),
    }[kind]
    emb = pa.array(np.random.default_rng(0).standard_normal((rows, 4)).astype(np.float32).tolist(),
                   type=pa.list_(pa.float32(), 4))
    pq.write_table(pa.table({"emb": emb, "label": pa.array(np.arange(rows) % 3), "rid": ids}), tmp_path / "e.parquet")
    out = tmp_path / "items.jsonl"
    result = run_cli("mine", "-s", "hard", str(tmp_path / "e.parquet"), "--id-column", "rid", "-o", str(out))
    assert result.exit_code in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    if result.exit_code == 0:
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == rows
        assert all(isinstance(line["anchor_id"], (str, float, int)) for line in lines)
    else:
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


# -- formats ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", [">f4", ">f8", "F<f4", "F>f8", "<f2-F"])
@pytest.mark.parametrize("command", ["inspect", "mine", "loss"])
def test_big_endian_and_fortran_npy_read_like_native(run_cli, tmp_path: Path, layout: str, command: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5))
    labels = np.arange(40) % 4
    fortran = layout.startswith("F") or layout.endswith("-F")
    dtype = layout.strip("F").replace("-", "")
    odd = x.astype(dtype)
    odd = np.asfortranarray(odd) if fortran else odd
    native = np.ascontiguousarray(odd.astype(odd.dtype.newbyteorder("=")))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "e.npy", odd)
    np.save(tmp_path / "b" / "e.npy", native)
    np.savez(tmp_path / "a" / "z.npz", embeddings=odd, labels=labels.astype(">i8"))
    for folder in ("a", "b"):
        np.save(tmp_path / folder / "e.labels.npy", labels)
    args = {"inspect": [], "mine": ["-s", "hard"], "loss": ["--kind", "contrastive"]}[command]
    want = ok(run_cli(command, *args, str(tmp_path / "b" / "e.npy"), "--json"))
    for name in ("e.npy", "z.npz"):
        got = ok(run_cli(command, *args, str(tmp_path / "a" / name), "--json"))
        for key in ("source", "seconds", "time"):
            got.pop(key, None)
            want.pop(key, None)
        same = json.dumps(got, sort_keys=True).replace(f"/a/{name}", "/b/e.npy").replace("/a/", "/b/")
        if name.endswith(".npz"):  # the same numbers; only where they came from differs
            same = same.replace("/b/e.npy[labels]", "/b/e.labels.npy").replace('"kind": "npz"', '"kind": "npy"')
        assert same == json.dumps(want, sort_keys=True), name


def test_fortran_npy_loads_as_c_order_memory_map(tmp_path: Path) -> None:
    x = np.asfortranarray(np.arange(60, dtype=">f4").reshape(12, 5))
    np.save(tmp_path / "f.npy", x)
    got = load_dataset(str(tmp_path / "f.npy")).embeddings
    assert got.flags.c_contiguous and got.dtype == np.dtype("float32") and isinstance(got, np.memmap)
    assert np.array_equal(got, x)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("shape,keep", [((50, 8), 0.5), ((1000, 3), 0.99), ((7, 1), 0.0)])
def test_truncated_npy_names_the_file(run_cli, tmp_path: Path, command: str, shape: tuple[int, int],
                                      keep: float) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.ones(shape, np.float32))
    raw = path.read_bytes()
    header = len(raw) - shape[0] * shape[1] * 4
    path.write_bytes(raw[: header + int((len(raw) - header) * keep)])
    before = digest(tmp_path)
    result = run_cli(command, *COMMAND_ARGS[command], str(path))
    assert_clean_failure(result, f"{path}: not a valid NPY file: its header says", tmp_path, before)


@pytest.mark.parametrize("member", ["text", "zip-in-zip", "truncated-npy", "raw-name"])
def test_npz_member_that_is_not_npy(run_cli, tmp_path: Path, member: str) -> None:
    path = tmp_path / "e.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.ones((12, 4), np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        if member == "text":
            archive.writestr("embeddings.npy", "1,2,3\n")
        elif member == "zip-in-zip":
            archive.writestr("embeddings.npy", b"PK\x03\x04" + bytes(100))
        elif member == "truncated-npy":
            archive.writestr("embeddings.npy", buffer.getvalue()[:150])
        else:
            archive.writestr("embeddings", b"not an array")
    before = digest(tmp_path)
    for command in COMMANDS:
        result = run_cli(command, *COMMAND_ARGS[command], str(path))
        assert_clean_failure(result, "NPZ member 'embeddings'", tmp_path, before)


# -- option extremes ----------------------------------------------------------------------------

EXTREMES = ["0", "-1", str(2**63), "nan", "inf"]


def numeric_options() -> list[tuple[str, str]]:
    """Every (command, --option) whose value is an int or a float, read from the Typer app."""
    found = []
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            kind = type(getattr(param, "type", None)).__name__
            if param.param_type_name == "option" and (annotation in (int, float) or kind in (
                    "IntParamType", "FloatParamType", "IntRange", "FloatRange")):
                found.append((name, max(param.opts, key=len)))
    return found


NUMERIC = numeric_options()


def test_the_extremes_test_sees_the_options() -> None:
    names = {option for _, option in NUMERIC}
    assert {"--negatives", "--budget-mib", "--seed", "--nlist", "--margin"} <= names, names


@pytest.mark.parametrize("command,option", NUMERIC)
def test_numeric_options_at_extremes(run_cli, tmp_path: Path, command: str, option: str) -> None:
    good = write_good(tmp_path, rows=24)
    before = digest(tmp_path)
    for value in EXTREMES:
        result = run_cli(command, *COMMAND_ARGS[command], option, value, str(good), "--json")
        assert result.exit_code in (0, 2), (option, value, result.exit_code, result.stderr[-2000:])
        assert "Traceback" not in result.stderr + result.stdout, (option, value, result.stderr[-2000:])
        if result.exit_code == 2 and "Usage:" not in result.stderr:  # a usage error is one line from main()
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error:"), (option, value, result.stderr)
        assert digest(tmp_path) == before


@pytest.mark.parametrize("base", [["-s", "hard", "--index", "ivf"], ["-s", "hard", "--index", "hnsw"],
                                  ["-s", "semi-hard", "--select", "all"], ["-s", "within-margin"],
                                  ["-s", "batch-hard", "--batch-size", "8"]])
@pytest.mark.parametrize("option", ["--nlist", "--nprobe", "--ef-search", "--negatives", "--max-items",
                                    "--workers"])
def test_mine_options_at_extremes_on_every_path(run_cli, tmp_path: Path, base: list[str], option: str) -> None:
    good = write_good(tmp_path, rows=24)
    for value in ("1", "-1", str(2**63), str(2**31)):
        result = run_cli("mine", *base, option, value, str(good), "--json")
        assert result.exit_code in (0, 2), (option, value, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (option, value, result.stderr[-2000:])


@pytest.mark.parametrize("index,option", [("ivf", "--nlist"), ("hnsw", "--ef-search"), ("ivf", "--nprobe")])
def test_faiss_parameters_capped_with_a_note(run_cli, tmp_path: Path, index: str, option: str) -> None:
    good = write_good(tmp_path, rows=60)
    payload = ok(run_cli("mine", "-s", "hard", "--index", index, option, "1000000000", str(good), "--json"))
    text = json.dumps(payload)
    assert "capped at" in text and "asked 1,000,000,000" in text, text


def test_scheduler_in_the_environment_does_not_break_the_local_engine(run_cli, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    good = write_good(tmp_path)
    monkeypatch.setenv("EMBEDKIT_SCHEDULER", "tcp://nowhere.invalid:1")
    ok(run_cli("mine", "-s", "hard", str(good), "--json"))
    ok(run_cli("mine", "-s", "hard", str(good), "--engine", "local", "--json"))


@pytest.mark.parametrize("address", ["tcp://::::x", "nonsense", "tcp://host:notaport", "://"])
def test_malformed_scheduler_address_is_one_line(run_cli, tmp_path: Path, address: str) -> None:
    pytest.importorskip("distributed")
    good = write_good(tmp_path)
    before = digest(tmp_path)
    result = run_cli("mine", "-s", "hard", str(good), "--engine", "dask", "--scheduler", address)
    assert_clean_failure(result, "Dask scheduler", tmp_path, before)


# -- bounded work -------------------------------------------------------------------------------

@pytest.mark.parametrize("base", [["-s", "hard", "--negatives", "5"], ["-s", "hard", "--index", "hnsw"],
                                  ["-s", "semi-hard"], ["-s", "semi-hard", "--select", "all", "-m", "100"],
                                  ["-s", "easy", "-m", "0"], ["-s", "easy", "--select", "all", "-m", "0"],
                                  ["-s", "batch-hard"], ["-s", "within-margin", "-m", "100"],
                                  ["-s", "hard", "--batch-size", "10"], ["-s", "hard", "--positives", "all"]])
def test_max_items_enforced_for_every_strategy(run_cli, tmp_path: Path, base: list[str]) -> None:
    good = write_good(tmp_path, rows=40)
    unbounded = ok(run_cli("mine", *base, str(good), "--json"))
    count = unbounded["items"] if isinstance(unbounded.get("items"), int) else None
    assert count is not None and count > 3, unbounded
    before = digest(tmp_path)
    result = run_cli("mine", *base, "--max-items", "3", str(good), "-o", str(tmp_path / "out.parquet"))
    assert_clean_failure(result, "3", tmp_path, before)
    assert "more than 3 items" in result.stderr or "(limit 3)" in result.stderr, result.stderr
    assert ok(run_cli("mine", *base, "--max-items", str(count), str(good), "--json"))["items"] == count


def oracle_duplicates(x: np.ndarray, labels: np.ndarray | None, rows: np.ndarray | None):
    groups: dict[bytes, list[int]] = {}
    for i in range(len(x)):
        if rows is None or rows[i]:
            groups.setdefault((np.ascontiguousarray(x[i]) + 0).tobytes(), []).append(i)
    repeated = [g for g in groups.values() if len(g) > 1]
    conflicting = None if labels is None else sum(len({int(labels[i]) for i in g}) > 1 for g in repeated)
    example = None
    if repeated:
        first = min(repeated, key=lambda g: g[0])
        example = (first[0], first[1])
    return sum(len(g) - 1 for g in repeated), len(repeated), conflicting, example


@pytest.mark.parametrize("collide", [False, True])
def test_exact_duplicates_in_blocks_match_the_oracle(monkeypatch: pytest.MonkeyPatch, collide: bool) -> None:
    import embedkit.repeated_rows as inspection

    if collide:  # every row with the same first sign hashes alike: the exact comparison must split them
        monkeypatch.setattr(inspection, "row_hashes",
                            lambda block: (np.asarray(block)[:, 0] > 0).astype(np.uint64))
    rng = np.random.default_rng(5)
    for trial in range(60):
        n, d = int(rng.integers(1, 50)), int(rng.integers(1, 4))
        x = rng.integers(-2, 3, (n, d)).astype([np.float32, np.float64, np.float16][trial % 3])
        x[rng.random(n) < 0.2] *= -1  # -0.0 equals 0.0
        labels = rng.integers(0, 3, n)
        rows = rng.random(n) < 0.8 if trial % 2 else None
        budget = [1e-6, 1e-4, 32.0][trial % 3]  # one group per pass, a few, all at once
        got = exact_duplicates(x, labels, budget_mib=budget, rows=rows)
        assert (got.rows, got.groups, got.conflicting_groups, got.example) == oracle_duplicates(x, labels, rows)


def test_one_nan_row_does_not_change_the_other_figures(run_cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    x[7] = x[3]
    labels = np.arange(30) % 3
    np.save(tmp_path / "clean.npy", np.delete(x, 12, axis=0))
    np.save(tmp_path / "clean.labels.npy", np.delete(labels, 12))
    x[12, 2] = np.nan
    np.save(tmp_path / "nan.npy", x)
    np.save(tmp_path / "nan.labels.npy", labels)
    clean = ok(run_cli("inspect", str(tmp_path / "clean.npy"), "--json"))
    dirty = ok(run_cli("inspect", str(tmp_path / "nan.npy"), "--json"))
    assert dirty["nan_rows"] == 1
    assert dirty["norms"] == clean["norms"]
    assert dirty["duplicates"]["rows"] == clean["duplicates"]["rows"] == 1
    assert dirty["duplicates"]["example"] == [3, 7]  # row numbers of the file itself
    assert dirty["labels"]["classes"] == clean["labels"]["classes"]
    assert math.isclose(dirty["distances"]["overlap"], clean["distances"]["overlap"])


# -- a file truncated under a memory map --------------------------------------------------------

def test_truncated_memory_map_is_an_error_before_it_is_read(tmp_path: Path) -> None:
    from embedkit.errors import InputError
    from embedkit.mining.keys import prepare
    from embedkit.tiles import gram_tiles

    path = tmp_path / "e.npy"
    np.save(path, np.ones((400, 8), np.float32))
    x = load_dataset(str(path)).embeddings
    prep = prepare(x, "euclidean")  # reads the whole map while the file is intact
    os.truncate(path, 200)  # another process truncates it; touching the pages now would be SIGBUS
    with pytest.raises(InputError, match="shrank to 200 bytes"):
        list(gram_tiles(np.ones((2, 8), np.float32), prep.x, 64))
    with pytest.raises(InputError, match="shrank to 200 bytes"):
        prep.rows(np.arange(3))
    from embedkit.distances import paired_distances

    with pytest.raises(InputError, match="shrank to 200 bytes"):
        paired_distances(x, np.arange(3), np.arange(3) + 1)


def test_truncated_memory_map_check_ignores_in_memory_arrays() -> None:
    from embedkit.arrays import mapped_file_guard

    mapped_file_guard(np.ones((3, 2)))()  # nothing to check, nothing raised


def test_one_nan_row_sampled_distances_equal_the_clean_file(run_cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 4)).astype(np.float32)
    labels = np.arange(80) % 4
    np.save(tmp_path / "clean.npy", np.delete(x, 40, axis=0))
    np.save(tmp_path / "clean.labels.npy", np.delete(labels, 40))
    x[40, 0] = np.inf
    np.save(tmp_path / "nan.npy", x)
    np.save(tmp_path / "nan.labels.npy", labels)
    args = ["--exact-pairs", "0", "--sample", "300", "--json"]
    clean = ok(run_cli("inspect", str(tmp_path / "clean.npy"), *args))
    dirty = ok(run_cli("inspect", str(tmp_path / "nan.npy"), *args))
    assert dirty["inf_rows"] == 1 and dirty["distances"]["method"] == "sampled"
    assert dirty["distances"] == clean["distances"]


@pytest.mark.parametrize("text,fragment", [
    (b"i,j,y\n0,18446744073709551615,1\n", "column 'j' holds an integer beyond int64"),
    (b"i,j,y\n0,99999999999999999999999,1\n", "column 'j' holds an integer beyond int64"),
    (b"i,j,j\n0,1,1\n", "duplicate column name(s) j"),
])
def test_pairs_csv_numbers_and_names(run_cli, tmp_path: Path, text: bytes, fragment: str) -> None:
    good = write_good(tmp_path)
    (tmp_path / "p.csv").write_bytes(text)
    before = digest(tmp_path)
    result = run_cli("loss", "--kind", "contrastive", "--pairs", str(tmp_path / "p.csv"), str(good))
    assert_clean_failure(result, fragment, tmp_path, before)


@pytest.mark.parametrize("text", [
    b"\xef\xbb\xbfi,j,y\r\n0,1,1\r\n2,3,0\r\n",            # BOM and CRLF
    b'"i","j","y"\n"0","1","1"\n"2","3","0"\n',              # quoted values
    b"i,j,y,note\n0,1,1,caf\xe9\n2,3,0,x\n",                # latin-1 in a column nobody reads
])
def test_pairs_csv_encodings_read_like_plain(run_cli, tmp_path: Path, text: bytes) -> None:
    good = write_good(tmp_path)
    (tmp_path / "plain.csv").write_bytes(b"i,j,y\n0,1,1\n2,3,0\n")
    (tmp_path / "odd.csv").write_bytes(text)
    want = ok(run_cli("loss", "--kind", "contrastive", "--pairs", str(tmp_path / "plain.csv"), str(good), "--json"))
    got = ok(run_cli("loss", "--kind", "contrastive", "--pairs", str(tmp_path / "odd.csv"), str(good), "--json"))
    assert (got["loss"], got["count"]) == (want["loss"], want["count"])


def test_unsigned_row_numbers_beyond_int64_in_a_pairs_parquet(run_cli, tmp_path) -> None:
    """A uint64 index column holding 2**64 - 1 is one error line (this path once named an
    undefined module and would have crashed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"i": pa.array([0, 2**64 - 1], pa.uint64()), "j": pa.array([1, 2], pa.uint64()),
                             "y": [1, 0]}), tmp_path / "u.parquet")
    np.save(tmp_path / "e.npy", np.random.default_rng(0).random((5, 3)).astype(np.float32))
    r = run_cli("loss", tmp_path / "e.npy", "--pairs", tmp_path / "u.parquet", "--kind", "contrastive")
    assert r.exit_code == 2 and "beyond any row number" in r.stderr and r.stderr.count("\n") == 1, r.stderr
