"""`embedkit loss` through the CLI: the mission's command line, the JSON contract, outputs, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import SAMPLE, SEED


def test_mission_command_line_works_as_typed(run_cli) -> None:
    result = run_cli("loss", "--kind", "contrastive", "--margin", "1.0", "emb.npy", cwd=SAMPLE)
    assert result.exit_code == 0, result.stderr
    assert "y·D² + (1−y)·max(m − D, 0)²" in result.stdout
    assert "emb.labels.npy" not in result.stderr
    assert "Total loss" in result.stdout and "Largest contributor" in result.stdout


def test_seed_trace_prints_the_formula_digits(run_cli) -> None:
    result = run_cli("loss", "--kind", "contrastive", "--pairs", SEED / "pairs.csv", "--reduction", "sum",
                     SEED / "faces.parquet", "--id-column", "id")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for cell in ("(A1, A2)", "(A2, B2)", "0.0707", "0.9899", "0.8485", "0.0229", "0.0050"):
        assert cell in out
    assert "0.0230" not in out
    assert "loss (sum) = 0.0330" in out
    assert "Largest contributor: (A2, B2)" in out


def test_json_contract(run_cli) -> None:
    result = run_cli("loss", "--kind", "contrastive", "--pairs", SEED / "a1_b1.csv", "--reduction", "sum",
                     "--margins", "0.5,1.0,1.5,2.0", SEED / "faces.npy", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    for key in ("kind", "loss", "reduction", "count", "active", "sweep", "formula", "max_item", "trace"):
        assert key in payload
    assert payload["kind"] == "contrastive" and payload["reduction"] == "sum" and payload["count"] == 1
    d = math.sqrt(0.98)
    assert payload["loss"] == pytest.approx((1 - d) ** 2, rel=1e-12)
    assert [round(p["loss"], 4) for p in payload["sweep"]] == [0.0, 0.0001, 0.2602, 1.0202]
    assert [p["margin"] for p in payload["sweep"]] == [0.5, 1.0, 1.5, 2.0]
    assert [p["active"] for p in payload["sweep"]] == [0, 1, 1, 1]


@pytest.mark.parametrize("kind", ["contrastive", "triplet", "npair", "infonce", "supcon", "bce"])
def test_every_kind_runs_on_sample_data(run_cli, kind: str) -> None:
    result = run_cli("loss", "--kind", kind, SAMPLE / "emb.parquet", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["kind"] == kind and payload["loss"] > 0 and payload["count"] > 0


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_per_item_output(run_cli, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"items{suffix}"
    result = run_cli("loss", "--pairs", SEED / "pairs.csv", SEED / "faces.parquet", "--id-column", "id", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    if suffix == ".parquet":
        table = pq.read_table(out).to_pydict()
    elif suffix == ".csv":
        lines = out.read_text().splitlines()
        header = [h.strip('"') for h in lines[0].split(",")]
        table = {h: [row.split(",")[k].strip('"') for row in lines[1:]] for k, h in enumerate(header)}
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        table = {k: [r[k] for r in rows] for k in rows[0]}
    assert list(table["i_id"]) == ["A1", "A1", "A2", "B1"]
    assert np.allclose([float(v) for v in table["loss"]], [0.005, (1 - math.sqrt(0.98)) ** 2, (1 - math.sqrt(0.72)) ** 2, 0.005])


def test_reduction_none_json_lists_losses(run_cli) -> None:
    result = run_cli("loss", "--pairs", SEED / "pairs.csv", SEED / "faces.npy", "--reduction", "none", "--json")
    payload = json.loads(result.stdout)
    assert payload["loss"] is None and len(payload["losses"]) == 4


def test_triplets_from_stdin_pipe(run_cli, tmp_path: Path) -> None:
    csv = "anchor,positive,negative\n0,1,2\n3,2,1\n"
    result = run_cli("loss", "--kind", "triplet", "--triplets", "-", SEED / "faces.npy", "--json", input=csv)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 2


def test_embeddings_from_stdin(run_cli) -> None:
    data = (SEED / "faces.npy").read_bytes()
    result = run_cli("loss", "--pairs", SEED / "pairs.csv", "--reduction", "sum", "--json", input=data)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["loss"] == pytest.approx(0.033044737829952875)


@pytest.mark.parametrize("args,message", [
    (["--margin", "-1"], "--margin must be"),
    (["--kind", "infonce", "--temperature", "0"], "--temperature must be > 0"),
    (["--margins", "0.5,x"], "'x' is not a number"),
    (["--pairs", "missing.csv"], "missing.csv: no such file"),
    (["--kind", "infonce", "--margins", "1,2"], "--margins applies"),
])
def test_bad_options_are_one_line_errors(run_cli, args: list[str], message: str) -> None:
    result = run_cli("loss", *args, SEED / "faces.npy")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_output_equal_to_input_is_refused(run_cli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes((SEED / "pairs.csv").read_bytes())
    before = pairs.read_bytes()
    result = run_cli("loss", "--pairs", pairs, SEED / "faces.npy", "-o", pairs)
    assert result.exit_code == 2 and "also an input" in result.stderr
    assert pairs.read_bytes() == before


def test_output_in_missing_folder_leaves_nothing(run_cli, tmp_path: Path) -> None:
    result = run_cli("loss", "--pairs", SEED / "pairs.csv", SEED / "faces.npy", "-o", tmp_path / "no" / "x.csv")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_no_labels_error_names_where_it_looked(run_cli, tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", np.eye(3, dtype=np.float32))
    result = run_cli("loss", tmp_path / "e.npy")
    assert result.exit_code == 2
    assert "needs labels" in result.stderr and "e.labels.npy" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--kind", "infonce", "--margin", "5"], "--margin does not apply to the infonce loss"),
    (["--kind", "triplet", "--form", "linear", "--temperature", "0.5"], "--form, --temperature do not apply"),
    (["--kind", "contrastive", "--scale", "3"], "--scale does not apply"),
    (["--reduction", "none"], "--reduction none lists every item"),
    (["--kind", "supcon", "--engine", "dask"], "--engine dask runs the all-pairs scan"),
])
def test_options_that_do_not_apply_are_refused(run_cli, args: list[str], message: str) -> None:
    result = run_cli("loss", *args, SEED / "faces.npy")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
