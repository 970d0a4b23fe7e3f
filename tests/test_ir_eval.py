"""IR figures against a loop oracle written from trec_eval's definitions; properties; run files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedkit.dataset import Dataset
from embedkit.errors import InputError
from embedkit.execution import Execution
from embedkit.ireval import evaluate_qrels, evaluate_run, read_run, score_rankings, write_run
from embedkit.qrels import Qrels


def oracle(ranking: list[str], judgements: dict[str, float], k: int) -> dict[str, float]:
    """One query's figures, straight from the definitions (trec_eval ndcg_cut, map_cut, P, recall; MTEB MRR)."""
    grade = lambda d: max(judgements.get(d, 0.0), 0.0)  # noqa: E731
    relevant = [d for d, g in judgements.items() if g > 0]
    R = len(relevant)
    top = ranking[:k]
    dcg = sum(grade(d) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted((g for g in judgements.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    hits = 0
    ap = 0.0
    rr = 0.0
    for i, d in enumerate(top):
        if grade(d) > 0:
            hits += 1
            ap += hits / (i + 1)
            if rr == 0.0:
                rr = 1.0 / (i + 1)
    return {"ndcg": dcg / idcg, "map": ap / R, "recall": hits / R, "precision": hits / k, "mrr": rr}


def oracle_means(rankings: dict[str, list[str]], qrels: dict[str, dict[str, float]], ks) -> dict[str, float]:
    queries = [q for q in rankings if any(g > 0 for g in qrels.get(q, {}).values())]
    out = {}
    for k in ks:
        per = [oracle(rankings[q], qrels[q], k) for q in queries]
        for family in ("ndcg", "mrr", "map", "recall", "precision"):
            out[f"{family}_at_{k}"] = sum(p[family] for p in per) / len(per)
    return out


def brute_rankings(queries: np.ndarray, corpus: np.ndarray, qids, dids, metric: str) -> dict[str, list[str]]:
    """Every query's full ranking by a Python sort over float64 scores (ties: ascending row)."""
    out = {}
    for qi, q in zip(qids, queries.astype(np.float64)):
        scored = []
        for j, c in enumerate(corpus.astype(np.float64)):
            if metric == "dot":
                key = -float(q @ c)
            elif metric == "cosine":
                key = -float(q @ c / (np.linalg.norm(q) * np.linalg.norm(c)))
            else:
                key = float(np.linalg.norm(q - c))
            scored.append((key, j))
        out[qi] = [dids[j] for _, j in sorted(scored)]
    return out


def _data(seed: int = 0, n_docs: int = 60, n_queries: int = 12, grid: bool = True):
    rng = np.random.default_rng(seed)
    # Small integer vectors: exact float32 scores and plenty of ties.
    corpus = rng.integers(-2, 3, (n_docs, 4)).astype(np.float32) if grid else rng.standard_normal((n_docs, 4))
    queries = rng.integers(-2, 3, (n_queries, 4)).astype(np.float32) if grid else rng.standard_normal((n_queries, 4))
    dids = [f"d{j}" for j in range(n_docs)]
    qids = [f"q{i}" for i in range(n_queries)]
    qrels: dict[str, dict[str, float]] = {}
    rows = []
    for i, q in enumerate(qids):
        if i == 3:
            qrels[q] = {dids[0]: 0, dids[5]: -1}  # judged, nothing relevant: skipped
            rows += [(q, dids[0], 0), (q, dids[5], -1)]
            continue
        if i == 4:
            continue  # not judged at all: skipped
        chosen = rng.choice(n_docs, min(n_docs, int(rng.integers(1, 8))), replace=False)
        qrels[q] = {}
        for j in chosen:
            g = int(rng.integers(0, 4))
            qrels[q][dids[j]] = g
            rows.append((q, dids[j], g))
    if not any(g > 0 for g in qrels["q0"].values()):
        qrels["q0"][dids[1]] = 2
        rows.append(("q0", dids[1], 2))
    table = Qrels(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                  np.array([r[2] for r in rows], dtype=np.int64), "qrels.tsv")
    return corpus, queries, np.array(dids), np.array(qids), qrels, table


@pytest.mark.parametrize("metric", ["dot", "euclidean", "cosine"])
def test_every_figure_matches_the_loop_oracle(metric):
    corpus, queries, dids, qids, qrels, table = _data(grid=metric != "cosine")
    ks = (1, 3, 10, 100)  # 100 > the 60-document corpus
    result = evaluate_qrels(Dataset(corpus, "corpus", ids=dids), Dataset(queries, "queries", ids=qids), table,
                            ks=ks, metric=metric, execution=Execution(budget_mib=0.001))
    expected = oracle_means(brute_rankings(queries, corpus, list(qids), list(dids), metric), qrels, ks)
    assert result.figures.keys() == expected.keys()
    for name, value in expected.items():
        assert result.figures[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
    evaluated = sum(any(g > 0 for g in j.values()) for j in qrels.values())
    assert result.queries == evaluated and result.skipped_queries == 12 - evaluated >= 2


def test_hand_computed_case():
    # One query; ranking d2 (grade 0), d0 (grade 2), d1 (grade 1); also d3 judged relevant, never ranked.
    corpus = np.array([[0.9, 0.0], [0.5, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    qrels = Qrels(np.array(["a"] * 4), np.array(["0", "1", "2", "3"]), np.array([2, 1, 0, 3]), "r")
    r = evaluate_qrels(Dataset(corpus, "c"), Dataset(np.array([[1.0, 0.0]]), "q", ids=np.array(["a"])), qrels,
                       ks=(3,), metric="dot").figures
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert r["ndcg_at_3"] == pytest.approx(dcg / idcg)
    assert r["map_at_3"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert r["recall_at_3"] == pytest.approx(2 / 3)
    assert r["precision_at_3"] == pytest.approx(2 / 3)
    assert r["mrr_at_3"] == pytest.approx(1 / 2)


def test_ties_rank_by_corpus_row():
    # d1 and d2 tie; the earlier row ranks first, so only d1 is in the top 1.
    corpus = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    q = Dataset(np.array([[1.0, 0.0]]), "q")
    first = evaluate_qrels(Dataset(corpus, "c"), q, Qrels(np.array(["0"]), np.array(["1"]), np.array([1]), "r"),
                           ks=(1,), metric="dot")
    second = evaluate_qrels(Dataset(corpus, "c"), q, Qrels(np.array(["0"]), np.array(["2"]), np.array([1]), "r"),
                            ks=(1,), metric="dot")
    assert first.figures["recall_at_1"] == 1.0 and second.figures["recall_at_1"] == 0.0


def test_no_relevant_query_at_all_is_an_error():
    qrels = Qrels(np.array(["0"]), np.array(["0"]), np.array([0]), "r.tsv")
    with pytest.raises(InputError, match="no query .* has a relevant document"):
        evaluate_qrels(Dataset(np.ones((2, 2)), "c"), Dataset(np.ones((1, 2)), "q"), qrels)


def test_run_round_trip_equals_the_embedding_path(tmp_path):
    corpus, queries, dids, qids, qrels, table = _data(seed=3)
    kw = dict(ks=(1, 5, 10, 100), metric="euclidean")
    result = evaluate_qrels(Dataset(corpus, "c", ids=dids), Dataset(queries, "q", ids=qids), table, keep_run=True,
                            per_query=True, **kw)
    path = tmp_path / "run.txt"
    lines = write_run(result.run, str(path))
    evaluated = sum(any(g > 0 for g in j.values()) for j in qrels.values())
    assert lines == evaluated * 60
    assert path.read_text().splitlines()[0].split()[1:4:2] == ["Q0", "1"]
    run = read_run(str(path))
    assert run.ranks[:3].tolist() == [1, 2, 3] and (np.diff(run.scores[:60]) <= 0).all()
    from_run = evaluate_run(run, table, ks=kw["ks"], per_query=True)
    assert from_run.figures == result.figures
    # q3 judged non-relevant; q4 neither judged nor in the run
    assert (from_run.queries, from_run.skipped_queries) == (evaluated, len(qrels) - evaluated)
    by_id = dict(zip(from_run.per_query["query_id"].tolist(), from_run.per_query["ndcg_at_10"].tolist()))
    assert [by_id[q] for q in result.per_query["query_id"].tolist()] == result.per_query["ndcg_at_10"].tolist()


def test_run_ties_follow_the_rank_column_and_missing_queries_score_zero(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("a Q0 x 1 1.0 t\na Q0 y 2 1.0 t\nb Q0 z 1 0.5 t\n")
    qrels = Qrels(np.array(["a", "c"]), np.array(["y", "z"]), np.array([1, 1]), "r")
    result = evaluate_run(read_run(str(path)), qrels, ks=(1, 2))
    assert result.figures["mrr_at_2"] == pytest.approx((0.5 + 0.0) / 2)
    assert result.queries_missing_from_run == 1 and result.skipped_queries == 1  # b: in the run, not judged


@pytest.mark.parametrize("text,message", [
    ("a Q0 x 1 1.0\n", "has 5 fields"),
    ("a Q0 x one 1.0 t\n", "is not a number"),
    ("a Q0 x 1 1.0 t\na Q0 x 2 0.5 t\n", "lists document 'x' more than once"),
    ("\n", "empty"),
])
def test_bad_run_files(tmp_path, text, message):
    path = tmp_path / "run.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_run(str(path))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["dot", "euclidean"]))
def test_properties_bounds_and_permutation(seed, metric):
    rng = np.random.default_rng(seed)
    corpus, queries, dids, qids, qrels, table = _data(seed=seed, n_docs=int(rng.integers(8, 40)),
                                                      n_queries=int(rng.integers(6, 10)))
    ks = (1, 4, 50)
    base = evaluate_qrels(Dataset(corpus, "c", ids=dids), Dataset(queries, "q", ids=qids), table, ks=ks,
                          metric=metric, ignore_missing=True)
    assert all(0.0 <= v <= 1.0 for v in base.figures.values())
    for k in ks:  # recall and MAP grow with K; precision at K is at most R/K
        assert base.figures[f"mrr_at_{k}"] >= base.figures[f"mrr_at_{ks[0]}"]
    # Shuffling the rows of both datasets, ids carried along, changes nothing where the ranking has
    # no ties (integer data ties a lot; tie order follows rows, so compare on tie-free ranks only via
    # floats instead):
    corpus_f = corpus + rng.standard_normal(corpus.shape) * 1e-3
    one = evaluate_qrels(Dataset(corpus_f, "c", ids=dids), Dataset(queries, "q", ids=qids), table, ks=ks,
                         metric=metric, ignore_missing=True)
    p, s = rng.permutation(len(dids)), rng.permutation(len(qids))
    two = evaluate_qrels(Dataset(corpus_f[p], "c", ids=dids[p]), Dataset(queries[s], "q", ids=qids[s]), table,
                         ks=ks, metric=metric, ignore_missing=True)
    assert two.figures == pytest.approx(one.figures, rel=1e-12)


def test_score_rankings_with_no_judgement_for_a_ranked_document():
    s = score_rankings(np.array([[3, -1]]), np.array([0]), np.array([9]), np.array([2]), (2,))
    assert s["ndcg_at_2"][0] == 0.0 and s["recall_at_2"][0] == 0.0 and s["precision_at_2"][0] == 0.0


def test_readme_worked_example():
    """sample_data/ir/ and the README's table: q1 ranks d1 d2 d3 …, q2 ranks d4 d3 d5 …, q3 skipped."""
    from embedkit.io import load_dataset
    from embedkit.qrels import read_qrels
    from tests.conftest import SAMPLE

    corpus = load_dataset(str(SAMPLE / "ir" / "corpus.parquet"), id_column="id")
    queries = load_dataset(str(SAMPLE / "ir" / "queries.parquet"), id_column="id")
    result = evaluate_qrels(corpus, queries, read_qrels(str(SAMPLE / "ir" / "qrels.tsv")), ks=(1, 3), keep_run=True)
    assert result.run.doc_ids.tolist() == [["d1", "d2", "d3"], ["d4", "d3", "d5"]]
    l3 = math.log2(3)
    q1 = (2 / l3) / (2 + 1 / l3)
    q2 = (1 + 2 / l3) / (2 + 1 / l3)
    expected = {
        "ndcg_at_1": (0 + 1 / 2) / 2, "ndcg_at_3": (q1 + q2) / 2,
        "mrr_at_1": 0.5, "mrr_at_3": (1 / 2 + 1) / 2,
        "map_at_1": (0 + 1 / 2) / 2, "map_at_3": ((1 / 2) / 2 + (1 + 2 / 2) / 2) / 2,
        "recall_at_1": 0.25, "recall_at_3": (1 / 2 + 1) / 2,
        "precision_at_1": 0.5, "precision_at_3": (1 / 3 + 2 / 3) / 2,
    }
    assert result.figures == pytest.approx(expected, rel=1e-12)
    assert round(result.figures["ndcg_at_3"], 5) == 0.66967 and (result.queries, result.skipped_queries) == (2, 1)
    readme = (SAMPLE.parent / "README.md").read_text()
    assert "| 3 | 0.66967 | 0.75 | 0.625 | 0.75 | 0.5 |" in readme


def test_scoring_blocks_do_not_change_anything():
    corpus, queries, dids, qids, qrels, table = _data(seed=11)
    args = (Dataset(corpus, "c", ids=dids), Dataset(queries, "q", ids=qids), table)
    whole = evaluate_qrels(*args, ks=(2, 5, 100), per_query=True)
    blocked = evaluate_qrels(*args, ks=(2, 5, 100), per_query=True, execution=Execution(budget_mib=2 * 100 * 32 / 2**20))  # 2 queries a block
    for name, values in whole.per_query.items():
        assert values.tolist() == blocked.per_query[name].tolist(), name
