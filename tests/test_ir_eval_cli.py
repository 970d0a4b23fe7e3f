"""eval --qrels and check --qrels through the CLI: JSON contract, run files, per-query files, errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedkit.dataset import Dataset
from embedkit.ireval import evaluate_qrels
from embedkit.qrels import read_qrels

REQUIRED = ("ndcg_at_10", "mrr_at_10", "map_at_100", "recall_at_10", "recall_at_100", "precision_at_10")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(7)
    corpus = rng.standard_normal((300, 8)).astype(np.float32)
    queries = (corpus[:30] + 0.3 * rng.standard_normal((30, 8))).astype(np.float32)
    np.save(tmp_path / "corpus.npy", corpus)
    np.save(tmp_path / "queries.npy", queries)
    lines = []
    for q in range(30):
        if q == 29:
            lines.append(f"{q} 0 5 0")  # judged, nothing relevant: skipped
            continue
        lines.append(f"{q} 0 {q} 2")
        lines += [f"{q} 0 {d} 1" for d in rng.choice(np.arange(30, 300), 2, replace=False)]
    (tmp_path / "qrels.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_json_contract_and_library_values(run_cli, files):
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                "--json")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    for name in REQUIRED:
        assert name in payload and 0 <= payload[name] <= 1
    assert payload["queries"] == 29 and payload["skipped_queries"] == 1 and payload["metric"] == "cosine"
    lib = evaluate_qrels(Dataset(np.load(files / "corpus.npy"), "c"), Dataset(np.load(files / "queries.npy"), "q"),
                         read_qrels(str(files / "qrels.txt")), ks=(10, 100), metric="cosine")
    assert {k: payload[k] for k in lib.figures} == lib.figures
    assert payload["ndcg_at_10"] > 0.5  # the queries are noisy copies of their grade-2 document


def test_k_repeatable_or_comma_separated(run_cli, files):
    base = ("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
            "--json", "--metric", "dot")
    one = json.loads(run_cli(*base, "--k", "5", "--k", "20").stdout)
    two = json.loads(run_cli(*base, "--k", "20,5").stdout)
    assert one == two and one["ks"] == [5, 20] and "ndcg_at_5" in one and "ndcg_at_10" not in one


def test_run_file_round_trip_equals_the_embedding_path(run_cli, files):
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                "--metric", "euclidean", "--run", files / "run.txt", "--k", "1,10,100", "--json")
    assert r.exit_code == 0, r.stderr
    lines = (files / "run.txt").read_text().splitlines()
    assert len(lines) == 29 * 100 and lines[0].split()[1::2] == ["Q0", "1", "embedkit"]
    assert float(lines[0].split()[4]) <= 0  # Euclidean: minus the distance, larger is better
    again = run_cli("eval", "--qrels", files / "qrels.txt", "--from-run", files / "run.txt", "--k", "1,10,100", "--json")
    assert again.exit_code == 0, again.stderr
    a, b = json.loads(r.stdout), json.loads(again.stdout)
    assert a["figures"] == b["figures"] and b["queries"] == 29 and b["skipped_queries"] == 1


def test_per_query_file(run_cli, files):
    out = files / "per_query.parquet"
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                "--per-query", out, "--json")
    assert r.exit_code == 0, r.stderr
    table = pq.read_table(out).to_pydict()
    assert table["query_id"][:3] == ["0", "1", "2"] and len(table["query_id"]) == 29
    assert table["relevant"][0] == 3
    assert np.mean(table["ndcg_at_10"]) == pytest.approx(json.loads(r.stdout)["ndcg_at_10"])


def test_parquet_ids_and_query_id_column(run_cli, tmp_path):
    corpus = np.eye(4, dtype=np.float32)
    pq.write_table(pa.table({"doc": ["a", "b", "c", "d"], "emb": list(corpus)}), tmp_path / "c.parquet")
    pq.write_table(pa.table({"qid": [10, 20], "emb": [corpus[2], corpus[0]]}), tmp_path / "q.parquet")
    (tmp_path / "qrels.csv").write_text("query_id,doc_id,relevance\n10,c,1\n20,b,1\n")
    r = run_cli("eval", tmp_path / "c.parquet", "--queries", tmp_path / "q.parquet", "--qrels", tmp_path / "qrels.csv",
                "--id-column", "doc", "--query-id-column", "qid", "--k", "1", "--json")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["mrr_at_1"] == 0.5 and payload["precision_at_1"] == 0.5


def test_unknown_ids_fail_unless_ignored(run_cli, files):
    (files / "more.txt").write_text((files / "qrels.txt").read_text() + "0 0 9999 1\n77 0 3 1\n")
    base = ("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "more.txt")
    r = run_cli(*base)
    assert r.exit_code == 2 and r.stdout == ""
    assert "2 of" in r.stderr and "'9999'" in r.stderr and "--ignore-missing" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    ok = run_cli(*base, "--ignore-missing", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["dropped_judgements"] == 2
    table = run_cli(*base, "--ignore-missing")
    assert "2 judgements dropped" in table.stdout and "1 skipped" in table.stdout


@pytest.mark.parametrize("extra,message", [
    (("--per-class",), "--per-class applies to label-based eval"),
    (("--reference", "x.npy"), "--reference applies to label-based eval"),
    (("--k", "0"), "not a whole number"),
    (("--run", "out.parquet", "--from-run", "r.txt"), "--from-run evaluates a run file without embeddings"),
])
def test_option_errors(run_cli, files, extra, message):
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt", *extra)
    assert r.exit_code == 2 and message in r.stderr, r.stderr


def test_qrels_options_need_qrels(run_cli, files):
    r = run_cli("eval", files / "corpus.npy", "--run", files / "run.txt")
    assert r.exit_code == 2 and "--run applies to retrieval with --qrels" in r.stderr
    r = run_cli("eval", files / "corpus.npy", "--metric", "dot")
    assert r.exit_code == 2 and "--metric dot" in r.stderr
    r = run_cli("eval", files / "corpus.npy", "--qrels", files / "qrels.txt")
    assert r.exit_code == 2 and "--qrels needs --queries" in r.stderr


def test_human_table(run_cli, files):
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt")
    assert r.exit_code == 0, r.stderr
    for text in ("29 evaluated", "1 skipped", "ndcg", "mrr", "precision", "@10", "@100", "ties by ascending corpus row"):
        assert text in r.stdout


def test_check_gates_on_ir_figures(run_cli, files):
    base = ("check", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt")
    ok = run_cli(*base, "--require", "ndcg_at_10>=0.5", "--require", "precision_at_1 > 0", "--json")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    outcomes = json.loads(ok.stdout)["requirements"]
    assert [o["source"] for o in outcomes] == ["qrels", "qrels"]
    fail = run_cli(*base, "--require", "recall_at_100>=1.01", "--junit", files / "j.xml")
    assert fail.exit_code == 1 and "recall_at_100>=1.01" in fail.stderr
    suite = ET.parse(files / "j.xml").getroot()
    assert suite.get("failures") == "1"


def test_check_baseline_needs_its_queries(run_cli, files):
    base = ("check", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
            "--baseline", files / "corpus.npy", "--max-drop", "ndcg_at_10=0")
    r = run_cli(*base)
    assert r.exit_code == 2 and "--baseline-queries" in r.stderr
    # The baseline's queries are a worse model: noise. The drop is caught.
    rng = np.random.default_rng(0)
    np.save(files / "old_queries.npy", rng.standard_normal((30, 8)).astype(np.float32))
    r = run_cli(*base, "--baseline-queries", files / "old_queries.npy")
    assert r.exit_code == 0, r.stdout + r.stderr  # the current export is better than the noise baseline
    r = run_cli("check", files / "corpus.npy", "--queries", files / "old_queries.npy", "--qrels", files / "qrels.txt",
                "--baseline", files / "corpus.npy", "--baseline-queries", files / "queries.npy",
                "--max-drop", "ndcg_at_10=0.05")
    assert r.exit_code == 1 and "max-drop ndcg_at_10=0.05" in r.stderr


def test_check_ir_names_need_qrels(run_cli, files):
    r = run_cli("check", files / "corpus.npy", "--require", "ndcg_at_10>=0.5")
    assert r.exit_code == 2 and "needs --queries and --qrels" in r.stderr


def test_qrels_from_stdin_and_stdout_outputs_refused(run_cli, files):
    text = (files / "qrels.txt").read_text()
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", "-", "--json", input=text)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["queries"] == 29
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                "--run", "-")
    assert r.exit_code == 2 and "--run -: give a file name" in r.stderr


def test_ids_a_run_file_cannot_hold_fail_before_any_output(run_cli, tmp_path):
    """--run with an id holding a space is refused before the ranking, so --per-query is not
    left written beside a missing run file."""
    rng = np.random.default_rng(3)
    corpus = rng.standard_normal((40, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": [f"doc {i}" for i in range(40)], "embedding": list(corpus)}), tmp_path / "c.parquet")
    pq.write_table(pa.table({"id": ["q0", "q1"], "embedding": list(corpus[:2])}), tmp_path / "q.parquet")
    (tmp_path / "qrels.tsv").write_text("query_id\tdoc_id\trelevance\nq0\tdoc 0\t1\nq1\tdoc 1\t1\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("eval", tmp_path / "c.parquet", "--queries", tmp_path / "q.parquet", "--qrels", tmp_path / "qrels.tsv",
                "--id-column", "id", "--per-query", tmp_path / "pq.csv", "--run", tmp_path / "run.txt")
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith("error: document id 'doc 0' holds whitespace") and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("extra,name", [(("--ignore-missing",), "--ignore-missing"), (("--workers", "2"), "--workers"),
                                        (("--column", "embedding"), "--column")])
def test_from_run_refuses_options_it_would_ignore(run_cli, files, extra, name):
    (files / "r.txt").write_text("0 Q0 0 1 0.9 x\n")
    r = run_cli("eval", "--qrels", files / "qrels.txt", "--from-run", files / "r.txt", *extra)
    assert r.exit_code == 2 and f"drop {name}" in r.stderr, r.stderr


def test_named_ids_without_id_column_point_to_it(run_cli, tmp_path):
    rng = np.random.default_rng(4)
    corpus = rng.standard_normal((20, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(20)], "embedding": list(corpus)}), tmp_path / "c.parquet")
    pq.write_table(pa.table({"id": ["q0"], "embedding": list(corpus[:1])}), tmp_path / "q.parquet")
    (tmp_path / "qrels.tsv").write_text("query_id\tdoc_id\nq0\td0\n")
    r = run_cli("eval", tmp_path / "c.parquet", "--queries", tmp_path / "q.parquet", "--qrels", tmp_path / "qrels.tsv")
    assert r.exit_code == 2 and "name the id column with --id-column" in r.stderr, r.stderr
    assert "--ignore-missing" not in r.stderr  # it would drop every judgement


def test_every_file_written_gets_a_wrote_line(run_cli, files):
    r = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                "--run", files / "run.txt", "--per-query", files / "pq.csv")
    assert r.exit_code == 0, r.stderr
    assert f"wrote {files / 'pq.csv'} (29 rows)" in r.stderr
    lines = len((files / "run.txt").read_text().splitlines())
    assert f"wrote {files / 'run.txt'} ({lines:,} lines)" in r.stderr
    quiet = run_cli("eval", files / "corpus.npy", "--queries", files / "queries.npy", "--qrels", files / "qrels.txt",
                    "--run", files / "run2.txt", "-q")
    assert quiet.exit_code == 0 and "wrote" not in quiet.stderr
