"""`embedkit mine` through the CLI: outputs, --json values, errors, and the pipe into `loss`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from embedkit.mining.strategies import MineSpec, mine
from tests.conftest import clustered


@pytest.fixture
def emb(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    x, labels = clustered(120, 8, 6, seed=3)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    np.save(tmp_path / "emb.labels.npy", labels)
    return path, x, labels


def test_json_summary_values(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, x, labels = emb
    result = run_cli("mine", path, "--strategy", "semi-hard", "--margin", "0.5", "--positives", "nearest", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    expected = mine(x, labels, MineSpec("semi-hard", margin=0.5, positives="nearest"))
    assert payload["items"] == expected.count
    assert payload["anchors"] == 120
    assert payload["anchors_with_none"] == expected.anchors_with_none
    assert payload["anchors_with_items"] == 120 - expected.anchors_with_none
    assert payload["index"]["used"] == "exact"
    assert payload["columns"] == ["anchor", "positive", "negative", "d_ap", "d_an"]
    assert payload["distances"]["d_an"]["p50"] == pytest.approx(float(np.median(expected.items["d_an"])))
    assert payload["distances"]["gap"]["min"] > 0  # semi-hard: d_an > d_ap
    assert payload["params"]["margin"] == 0.5
    assert payload["recall"] is None


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_output_files(run_cli, emb, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path, x, labels = emb
    out = tmp_path / f"t{suffix}"
    result = run_cli("mine", path, "-s", "hard", "-k", "2", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    if suffix == ".parquet":
        table = pq.read_table(out).to_pydict()
    elif suffix == ".csv":
        table = pacsv.read_csv(out).to_pydict()
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        table = {k: [r[k] for r in rows] for k in rows[0]}
    assert list(table) == ["anchor", "positive", "negative", "d_ap", "d_an"]
    assert len(table["anchor"]) == payload["items"] == 240
    a, n = np.array(table["anchor"]), np.array(table["negative"])
    assert (labels[a] != labels[n]).all()
    np.testing.assert_allclose(table["d_an"], np.linalg.norm(x[a].astype(float) - x[n], axis=1), rtol=1e-6)


def test_pairs_output_and_stdout_csv(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, x, labels = emb
    result = run_cli("mine", path, "-s", "within-margin", "-m", "2.5", "-o", "-")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '"i","j","y","d"'
    expected = mine(x, labels, MineSpec("within-margin", margin=2.5))
    assert len(lines) - 1 == expected.count > 0
    assert "within-margin" in result.stderr and "pairs" in result.stderr  # the summary went to stderr


def test_human_summary(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = emb
    result = run_cli("mine", path, "-s", "semi-hard", "-m", "0.05")
    assert result.exit_code == 0, result.stderr
    for text in ("anchors with none", "d_an − d_ap", "p50", "index", "exact", "First 5"):
        assert text in result.stdout
    assert result.stderr == ""


def test_id_column_from_parquet(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, labels = clustered(40, 4, 4, seed=1)
    table = pa.table({"id": [f"doc{i}" for i in range(40)], "label": labels,
                      "emb": pa.array(list(x), type=pa.list_(pa.float32()))})
    src = tmp_path / "e.parquet"
    pq.write_table(table, src)
    out = tmp_path / "t.parquet"
    result = run_cli("mine", src, "-s", "hard", "--id-column", "id", "-o", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    got = pq.read_table(out).to_pydict()
    assert got["anchor_id"] == [f"doc{i}" for i in got["anchor"]]
    assert got["negative_id"] == [f"doc{i}" for i in got["negative"]]


def test_recall_check_in_json(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = emb
    result = run_cli("mine", path, "-s", "hard", "--index", "exact", "--check-recall", "30", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["recall"] == {"value": 1.0, "anchors": 30}


def test_batches_in_json(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = emb
    result = run_cli("mine", path, "-s", "batch-hard", "--batch-size", "32", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["batches"] == 4 and payload["params"]["batch_size"] == 32


@pytest.mark.parametrize("args, message", [
    (["-s", "semi-hard", "--index", "ivf"], "per-anchor threshold"),
    (["-s", "hard", "--json", "-o", "-"], "both write to stdout"),
    (["-s", "hard", "-o", "out.txt"], "unknown output format"),
    (["-s", "hard", "--select", "all"], "--select applies"),
    (["-s", "nonsense"], "nonsense"),
])
def test_usage_errors_exit_2(run_cli, emb, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = emb
    result = run_cli("mine", path, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_label_errors_exit_2(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "e.npy"
    np.save(path, np.random.default_rng(0).standard_normal((10, 3)))
    result = run_cli("mine", path)
    assert result.exit_code == 2 and "needs labels" in result.stderr
    np.save(tmp_path / "e.labels.npy", np.zeros(10, int))
    result = run_cli("mine", path)
    assert result.exit_code == 2 and "one label" in result.stderr
    np.save(tmp_path / "e.labels.npy", np.arange(10))
    result = run_cli("mine", path, "-s", "semi-hard")
    assert result.exit_code == 2 and "needs positives" in result.stderr


def test_output_may_not_overwrite_an_input(run_cli, emb) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = emb
    result = run_cli("mine", path, "-o", path.with_name("out.csv"), "-q")
    assert result.exit_code == 0, result.stderr  # a different file is fine
    result = run_cli("mine", path, "-o", path.with_suffix(".labels.csv"))
    assert result.exit_code == 2 and "also an input" in result.stderr


def test_help_states_every_definition(run_cli) -> None:  # type: ignore[no-untyped-def]
    import typer
    from embedkit.cli.main import app

    result = run_cli("mine", "--help")
    assert result.exit_code == 0 and "semi-hard" in result.stdout
    command = typer.main.get_command(app).commands["mine"]  # type: ignore[attr-defined]
    # Definitions sit in the epilog (one line each) and the option texts, not cut in a table cell.
    text = " ".join(" ".join([*(p.help or "" for p in command.params), command.epilog or ""]).split())
    for phrase in ("d_ap < d_an ≤ d_ap + margin", "farthest positive", "d_an − d_ap > margin", "K nearest negatives",
                   "tf-addons", "exact scan on N sampled anchors", "random batches of N rows"):
        assert phrase in text, phrase


def test_library_imports_no_cli_packages() -> None:
    code = "import embedkit.mining.strategies, sys; print('typer' in sys.modules or 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pipe_into_loss_with_the_installed_script(emb) -> None:  # type: ignore[no-untyped-def]
    path, x, labels = emb
    exe = shutil.which("embedkit") or str(Path(sys.executable).with_name("embedkit"))
    if not Path(exe).exists():
        pytest.fail(f"the installed embedkit script is missing: {exe}")
    command = (f"'{exe}' mine '{path}' -s semi-hard -m 0.5 --positives nearest -o - -q | "
               f"'{exe}' loss --kind triplet --margin 0.5 --no-squared --triplets - '{path}' --json")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                          cwd=path.parent.parent)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    expected = mine(x, labels, MineSpec("semi-hard", margin=0.5, positives="nearest"))
    assert payload["count"] == expected.count
    # every semi-hard triplet is active in the unsquared triplet loss at the same margin
    loss = np.maximum(expected.items["d_ap"] - expected.items["d_an"] + 0.5, 0)
    assert payload["total"] == pytest.approx(float(loss.sum()), rel=1e-6)
    assert payload["active"] == int((loss > 0).sum())
