"""eval through the CLI: exit codes, --json values, gallery splits, per-class tables, help texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.metrics import retrieval_metrics
from tests.conftest import SAMPLE, clustered

EMB = SAMPLE / "emb.npy"


def test_json_matches_the_library(run_cli):
    r = run_cli("eval", EMB, "--json", "--k", "1,3")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    x, labels = np.load(EMB), np.load(SAMPLE / "emb.labels.npy")
    lib = retrieval_metrics(x, labels, ks=(1, 3))
    assert payload["precision_at_1"] == lib.precision_at_1 == 0.90425
    assert payload["map_at_r"] == lib.map_at_r and payload["r_precision"] == lib.r_precision
    assert payload["recall_at_k"] == {"1": lib.recall_at_k[1], "3": lib.recall_at_k[3]}
    assert payload["search_k"] == payload["largest_class"] == 452 and payload["same_source"] is True
    assert payload["figures"]["recall_at_3"] == lib.recall_at_k[3]


def test_parquet_and_cosine(run_cli):
    r = run_cli("eval", SAMPLE / "emb.parquet", "--metric", "cosine", "--json")
    assert r.exit_code == 0, r.stderr
    # The sample rows are L2-normalised: cosine ranks as Euclidean does.
    assert json.loads(r.stdout)["precision_at_1"] == 0.90425


def test_table_and_per_class(run_cli):
    r = run_cli("eval", SAMPLE / "seed" / "faces.npy", "--per-class")
    assert r.exit_code == 0, r.stderr
    for text in ("precision_at_1", "map_at_r", "recall_at_10", "Per class", "alice", "bob"):
        assert text in r.stdout
    payload = json.loads(run_cli("eval", SAMPLE / "seed" / "faces.npy", "--per-class", "--json").stdout)
    assert payload["precision_at_1"] == 1.0
    assert [row["label"] for row in payload["per_class"]] == ["alice", "bob"]


def test_gallery_split(run_cli, tmp_path):
    ref, ref_labels = clustered(60, 5, 4, seed=2, spread=1.0)
    queries = ref[:20] + np.random.default_rng(1).normal(0, 0.5, (20, 5)).astype(np.float32)
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "ref.labels.npy", ref_labels)
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "q.labels.npy", ref_labels[:20])
    expected = retrieval_metrics(ref, ref_labels, queries=queries, query_labels=ref_labels[:20])
    for args in (["--queries", tmp_path / "q.npy", "--reference", tmp_path / "ref.npy"],
                 [tmp_path / "ref.npy", "--queries", tmp_path / "q.npy"]):
        r = run_cli("eval", *args, "--json")
        assert r.exit_code == 0, r.stderr
        payload = json.loads(r.stdout)
        assert payload["same_source"] is False and payload["queries"] == 20
        assert payload["precision_at_1"] == expected.precision_at_1
        assert payload["map_at_r"] == expected.map_at_r


@pytest.mark.parametrize("args, fragment", [
    (["--reference", "x.npy"], "--reference needs --queries"),
    (["EMB", "--reference", "x.npy", "--queries", "y.npy"], "not both"),
    (["EMB", "--k", "0"], "--k"),
    (["EMB", "--k", "a,b"], "--k"),
])
def test_option_errors_exit_2(run_cli, args, fragment):
    r = run_cli("eval", *[str(EMB) if a == "EMB" else a for a in args])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: ") and fragment in r.stderr


def test_missing_labels_exit_2(run_cli, tmp_path):
    np.save(tmp_path / "e.npy", np.eye(4, dtype=np.float32))
    r = run_cli("eval", tmp_path / "e.npy")
    assert r.exit_code == 2 and "eval needs labels" in r.stderr


def test_all_singletons_exit_2(run_cli, tmp_path):
    np.save(tmp_path / "e.npy", np.eye(4, dtype=np.float32))
    np.save(tmp_path / "e.labels.npy", np.arange(4))
    r = run_cli("eval", tmp_path / "e.npy")
    assert r.exit_code == 2 and "undefined" in r.stderr


@pytest.mark.parametrize("command", ["eval", "check", "inspect"])
def test_help(run_cli, command):
    r = run_cli(command, "--help")
    assert r.exit_code == 0 and "Examples" in r.stdout


def test_stdin(run_cli):
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.load(EMB))
    r = run_cli("eval", "--labels", SAMPLE / "emb.labels.npy", "--json", input=buffer.getvalue())
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["precision_at_1"] == 0.90425
