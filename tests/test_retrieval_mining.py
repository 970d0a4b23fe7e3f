"""Retrieval mining (mine CORPUS --queries Q --qrels R): a brute-force oracle for every filter,
sentence-transformers' window semantics, qrels handling, mine-once-filter-many, formats, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.mining.retrieval import SearchSpec, mine_from_candidates, mine_retrieval
from embedkit.mining.retrieval_candidates import list_chunks
from embedkit.mining.retrieval_select import SelectionSpec, select_negatives

# -- oracles ------------------------------------------------------------------------------------


def _scores(q: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    q = q.astype(np.float64)
    c = c.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
    return c @ q


def oracle(queries, corpus, positives: dict[int, list[int]], spec: SelectionSpec, metric: str = "cosine"):
    """One query at a time over every document, exactly as the issue states the selection."""
    p_max = max(len(p) for p in positives.values())
    out = {}
    for q in sorted(positives):
        s = _scores(queries[q], corpus, metric)
        order = sorted(range(len(corpus)), key=lambda d: (-s[d], d))
        if spec.range_max is not None:
            order = order[: spec.range_max + p_max]
        pos = positives[q]
        p = min(s[d] for d in pos)
        survivors = []
        for d in order:
            if d in pos:
                continue
            if spec.absolute_margin is not None and not s[d] + spec.absolute_margin <= p:
                continue
            if spec.relative_margin is not None and not s[d] <= p - abs(p) * spec.relative_margin:
                continue
            if spec.max_score is not None and not s[d] <= spec.max_score:
                continue
            if spec.min_score is not None and not s[d] >= spec.min_score:
                continue
            if spec.max_positive_similarity is not None:
                if max(_scores(corpus[d], corpus[[e]], metric)[0] for e in pos) > spec.max_positive_similarity:
                    continue
            survivors.append(d)
        ranked = survivors[spec.range_min:]
        if spec.range_max is not None:
            ranked = survivors[spec.range_min: spec.range_max]
        out[q] = ranked[: spec.negatives]
    return out


def st_window_steps(queries, corpus, positives, *, range_min, range_max, relative_margin=None,
                    absolute_margin=None, max_score=None, min_score=None, num_negatives=3):
    """sentence-transformers 6.x ``mine_hard_negatives(sampling_strategy="top")`` step by step on
    normalised vectors (its non-FAISS path), in numpy: topk(range_max + max_positives), positives
    set to -inf, margins against the lowest positive (``s + M > p``, ``s > p·(1 − R)``), then
    ``max_score``/``min_score``, topk(range_max), drop the first range_min, take num_negatives,
    and drop -inf entries."""
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cn = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    p_max = max(len(p) for p in positives.values())
    out = {}
    for q, pos in sorted(positives.items()):
        s = (cn @ qn[q]).astype(np.float32)
        idx = np.argsort(-s, kind="stable")[: range_max + p_max]
        sc = s[idx].astype(np.float64)
        sc[np.isin(idx, pos)] = -np.inf
        p = min(float(s[d]) for d in pos)
        if absolute_margin is not None:
            sc[sc + absolute_margin > p] = -np.inf
        if relative_margin is not None:
            sc[sc > p * (1 - relative_margin)] = -np.inf
        if max_score is not None:
            sc[sc > max_score] = -np.inf
        if min_score is not None:
            sc[sc < min_score] = -np.inf
        local = np.argsort(-sc, kind="stable")[:range_max]
        keep_idx, keep_sc = idx[local][range_min:], sc[local][range_min:]
        keep_idx, keep_sc = keep_idx[:num_negatives], keep_sc[:num_negatives]
        out[q] = [int(d) for d, v in zip(keep_idx, keep_sc) if v != -np.inf]
    return out


def judged(positives: dict[int, list[int]]):
    qr = np.array([q for q, ds in positives.items() for _ in ds], dtype=np.int64)
    dr = np.array([d for ds in positives.values() for d in ds], dtype=np.int64)
    return qr, dr, np.ones(len(qr), dtype=np.int64)


def mined(result) -> dict[int, list[int]]:
    rows = result.selection.rows
    return {int(q): [int(d) for d in rows[i] if d >= 0] for i, q in enumerate(result.candidates.query_rows)}


def data(seed=0, n=300, m=40, dim=8, pos=2):
    rng = np.random.default_rng(seed)
    corpus = rng.normal(size=(n, dim)).astype(np.float32)
    queries = rng.normal(size=(m, dim)).astype(np.float32)
    positives = {}
    for q in range(m):
        # Positives close to the query (a retrieval setting), and a near-duplicate of one.
        docs = rng.choice(n, size=pos, replace=False)
        for j, d in enumerate(docs):
            corpus[d] = queries[q] + rng.normal(scale=0.3 + 0.3 * j, size=dim)
        positives[q] = sorted(int(d) for d in docs)
    return queries, corpus, positives


SPECS = [
    SelectionSpec(),
    SelectionSpec(negatives=5, relative_margin=0.05),
    SelectionSpec(negatives=4, relative_margin=0.05, range_max=30),
    SelectionSpec(negatives=3, absolute_margin=0.1, range_min=2),
    SelectionSpec(negatives=3, max_score=0.5, min_score=-0.2),
    SelectionSpec(negatives=3, max_positive_similarity=0.6),
    SelectionSpec(negatives=6, relative_margin=0.1, absolute_margin=0.02, max_score=0.7, min_score=0.0,
                  max_positive_similarity=0.8, range_min=1),
    SelectionSpec(negatives=6, relative_margin=0.1, absolute_margin=0.02, max_score=0.7, min_score=0.0,
                  max_positive_similarity=0.8, range_min=1, range_max=12),
    SelectionSpec(negatives=2, relative_margin=-0.2, range_max=5, range_min=4),
]


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_every_filter_equals_the_brute_force_oracle(spec):
    queries, corpus, positives = data()
    result = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec(), execution=Execution(budget_mib=0.05))
    assert mined(result) == oracle(queries, corpus, positives, spec)


def test_deep_lists_grow_until_enough_survivors():
    # A tight max-score leaves survivors only far down the ranking: lists must grow.
    queries, corpus, positives = data(seed=3, n=400)
    spec = SelectionSpec(negatives=3, max_score=-0.6)
    result = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec())
    assert mined(result) == oracle(queries, corpus, positives, spec)
    assert result.candidates.depth.max() > spec.needed + 2 + 16  # it grew
    assert sum(map(len, mined(result).values())) > 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), negatives=st.integers(1, 5), range_min=st.integers(0, 3),
       range_max=st.one_of(st.none(), st.integers(4, 20)),
       relative=st.one_of(st.none(), st.sampled_from([0.0, 0.05, 0.3, -0.1])),
       absolute=st.one_of(st.none(), st.sampled_from([0.0, 1.0, 3.0])),
       max_score=st.one_of(st.none(), st.integers(-2, 6)), min_score=st.one_of(st.none(), st.integers(-6, 2)),
       max_pos=st.one_of(st.none(), st.integers(-2, 8)))
def test_integer_dot_scores_with_ties_equal_the_oracle(seed, negatives, range_min, range_max, relative, absolute,
                                                      max_score, min_score, max_pos):
    # Small integer vectors and --metric dot: scores are exact, ties are everywhere and must
    # rank by ascending corpus row.
    if range_max is not None and range_min >= range_max:
        range_min = 0
    rng = np.random.default_rng(seed)
    corpus = rng.integers(-2, 3, size=(60, 3)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(6, 3)).astype(np.float32)
    positives = {q: sorted(rng.choice(60, size=int(rng.integers(1, 4)), replace=False).tolist()) for q in range(6)}
    spec = SelectionSpec(negatives=negatives, range_min=range_min, range_max=range_max, relative_margin=relative,
                         absolute_margin=absolute, max_score=max_score, min_score=min_score,
                         max_positive_similarity=max_pos)
    result = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec(metric="dot"), execution=Execution(budget_mib=0.01))
    assert mined(result) == oracle(queries, corpus, positives, spec, metric="dot")


# -- sentence-transformers parity ------------------------------------------------------------------

# Six documents and two queries written out: 2-D unit-ish vectors, so scores are easy to read.
ST_CORPUS = np.array([[1.0, 0.0], [0.96, 0.28], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0],
                      [0.28, 0.96], [0.99, 0.141]], dtype=np.float32)
ST_QUERIES = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
ST_POSITIVES = {0: [2], 1: [3, 6]}


def test_st_window_parity_written_out():
    # Query 0: scores 1, .96, .8(positive), .6, 0, -1, .28, .99. p = 0.8.
    # relative_margin 0.1 keeps s <= 0.72: docs 3 (0.6), 6 (0.28), 4 (0), 5 (-1).
    # range_max 3 + P_max 2 = window of the top 5: 0, 7, 1, 2(pos), 3 -> only doc 3 survives.
    spec = SelectionSpec(negatives=2, range_max=3, relative_margin=0.1)
    result = mine_retrieval(ST_CORPUS, ST_QUERIES, judged(ST_POSITIVES), spec, SearchSpec())
    assert mined(result)[0] == [3]
    # Query 1: positives 3 (0.8) and 6 (0.96); p = 0.8 -> keep s <= 0.72: window top 5 is
    # 4 (1.0), 6, 3, 2 (0.6), 1 (0.28) -> survivors 2, 1.
    assert mined(result)[1] == [2, 1]
    assert mined(result) == st_window_steps(ST_QUERIES, ST_CORPUS, ST_POSITIVES, range_min=0, range_max=3,
                                            relative_margin=0.1, num_negatives=2)


@pytest.mark.parametrize("kwargs", [
    dict(range_min=0, range_max=30, relative_margin=0.05, num_negatives=4),
    dict(range_min=2, range_max=10, absolute_margin=0.05, num_negatives=3),
    dict(range_min=0, range_max=8, max_score=0.6, min_score=0.1, num_negatives=5),
    dict(range_min=1, range_max=25, relative_margin=0.02, absolute_margin=0.0, max_score=0.9, num_negatives=10),
])
def test_window_equals_sentence_transformers_steps(kwargs):
    queries, corpus, positives = data(seed=5)
    spec = SelectionSpec(negatives=kwargs["num_negatives"], range_min=kwargs["range_min"],
                         range_max=kwargs["range_max"], relative_margin=kwargs.get("relative_margin"),
                         absolute_margin=kwargs.get("absolute_margin"), max_score=kwargs.get("max_score"),
                         min_score=kwargs.get("min_score"))
    result = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec())
    assert mined(result) == st_window_steps(queries, corpus, positives, **kwargs)


def test_relative_margin_is_sign_safe_unlike_st():
    # p < 0: st keeps s <= p·(1 − R), which is *above* p; the p − |p|·R stays below p.
    rows = np.array([[5, 6]])
    scores = np.array([[-0.48, -0.55]], dtype=np.float32)
    spec = SelectionSpec(negatives=2, relative_margin=0.05)
    chosen = select_negatives(rows, scores, np.zeros((1, 2), bool), np.array([-0.5]), spec)
    assert chosen.rows.tolist() == [[6, -1]]  # -0.48 > -0.5·1.05 is removed; st would keep it (-0.48 <= -0.475)


# -- selection core ---------------------------------------------------------------------------------

def test_random_sampling_is_reproducible_and_never_pads():
    queries, corpus, positives = data(seed=2)
    spec = SelectionSpec(negatives=4, range_max=10, relative_margin=0.05, sampling="random", seed=7)
    a = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec())
    b = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec())
    assert np.array_equal(a.selection.rows, b.selection.rows)
    pool = oracle(queries, corpus, positives, replace(spec, negatives=10, sampling="top"))
    for q, docs in mined(a).items():
        assert len(docs) == min(4, len(pool[q])) and len(set(docs)) == len(docs)
        assert set(docs) <= set(pool[q]) and not set(docs) & set(positives[q])
        assert docs == sorted(docs, key=pool[q].index)  # kept in ranking order
    assert a.short_queries == sum(len(p) < 4 for p in pool.values())
    other = mine_retrieval(corpus, queries, judged(positives), replace(spec, seed=8), SearchSpec())
    assert not np.array_equal(a.selection.rows, other.selection.rows)


def test_removed_counts_follow_the_filter_order():
    rows = np.array([[1, 2, 3, 4, 5]])
    scores = np.array([[0.95, 0.9, 0.7, 0.5, 0.1]], dtype=np.float32)
    is_pos = np.array([[True, False, False, False, False]])
    spec = SelectionSpec(negatives=5, range_max=5, relative_margin=0.1, max_score=0.6, min_score=0.2)
    chosen = select_negatives(rows, scores, is_pos, np.array([0.95]), spec)
    # 0.9 > 0.855 (margin); 0.7 > 0.6 (max score); 0.1 < 0.2 (min score); 0.5 survives.
    assert chosen.removed == {"relative_margin": 1, "max_score": 1, "min_score": 1}
    assert chosen.rows.tolist() == [[4, -1, -1, -1, -1]]


# -- qrels ------------------------------------------------------------------------------------------

def write_inputs(tmp: Path, queries, corpus, *, texts=False, ids=True):
    corpus_table = {"id": [f"d{i}" for i in range(len(corpus))], "embedding": list(corpus)}
    query_table = {"id": [f"q{i}" for i in range(len(queries))], "embedding": list(queries)}
    if texts:
        corpus_table["text"] = [f"passage {i}" for i in range(len(corpus))]
        query_table["text"] = [f"question {i}" for i in range(len(queries))]
    pq.write_table(pa.table(corpus_table), tmp / "corpus.parquet")
    pq.write_table(pa.table(query_table), tmp / "queries.parquet")
    return tmp / "corpus.parquet", tmp / "queries.parquet"


def write_qrels(tmp: Path, positives, kind="csv", extra=()):
    rows = [(f"q{q}", f"d{d}", 1) for q, ds in positives.items() for d in ds] + list(extra)
    if kind == "csv":
        path = tmp / "qrels.csv"
        path.write_text("query_id,doc_id,relevance\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    elif kind == "tsv":
        path = tmp / "qrels.tsv"
        path.write_text("query_id\tdoc_id\tscore\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
    elif kind == "jsonl":
        path = tmp / "qrels.jsonl"
        path.write_text("".join(json.dumps({"query_id": a, "doc_id": b, "relevance": c}) + "\n" for a, b, c in rows))
    elif kind == "parquet":
        path = tmp / "qrels.parquet"
        pq.write_table(pa.table({"query_id": [r[0] for r in rows], "doc_id": [r[1] for r in rows],
                                 "relevance": [r[2] for r in rows]}), path)
    else:
        path = tmp / "qrels.txt"
        path.write_text("".join(f"{a} 0 {b} {c}\n" for a, b, c in rows))
    return path


def cli_mine(run_cli, tmp, *args):
    r = run_cli("mine", tmp / "corpus.parquet", "--queries", tmp / "queries.parquet", "--id-column", "id",
                *args, "--json", "-q")
    return r


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet", "trec"])
def test_every_qrels_format_mines_the_same(run_cli, tmp_path, kind):
    queries, corpus, positives = data(seed=1, n=120, m=10)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives, kind)
    out = tmp_path / "out.parquet"
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--relative-margin", "0.05", "-o", out)
    assert r.exit_code == 0, r.stderr
    table = pq.read_table(out).to_pydict()
    expect = oracle(queries, corpus, positives, SelectionSpec(relative_margin=0.05))
    got: dict[int, list[int]] = {}
    for q, p, n in zip(table["query_id"], table["positive_id"], table["negative_id"]):
        assert int(p[1:]) in positives[int(q[1:])]
        got.setdefault(int(q[1:]), [])
        if int(n[1:]) not in got[int(q[1:])]:
            got[int(q[1:])].append(int(n[1:]))
    assert got == {q: v for q, v in expect.items() if v}
    assert json.loads(r.stdout)["triplets"] == len(table["query_id"])


def test_graded_relevance_and_relevance_zero(run_cli, tmp_path):
    queries, corpus, positives = data(seed=4, n=100, m=6)
    write_inputs(tmp_path, queries, corpus)
    graded = {q: ds for q, ds in positives.items()}
    # q0's second positive has grade 2 (still a positive); q1 gains a grade-0 judgement
    # (not a positive: it stays a candidate); q5 only has a grade-0 judgement (not mined).
    path = tmp_path / "qrels.csv"
    lines = ["query_id,doc_id,relevance"]
    for q, ds in graded.items():
        if q == 5:
            continue
        for j, d in enumerate(ds):
            lines.append(f"q{q},d{d},{2 if (q == 0 and j == 1) else 1}")
    s1 = _scores(queries[1], corpus, "cosine")
    zero = int(next(d for d in np.argsort(-s1) if d not in positives[1]))
    lines += [f"q1,d{zero},0", f"q5,d{positives[5][0]},0"]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    r = cli_mine(run_cli, tmp_path, "--qrels", path, "-o", out)
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["queries_mined"] == 5 and payload["qrels"]["queries_without_positive"] == 1
    table = pq.read_table(out).to_pydict()
    q1_negs = [n for q, n in zip(table["query_id"], table["negative_id"]) if q == "q1"]
    assert f"d{zero}" == q1_negs[0]  # judged non-relevant: the hardest negative
    expect = oracle(queries, corpus, {q: v for q, v in positives.items() if q != 5}, SelectionSpec())
    assert payload["negatives"] == sum(map(len, expect.values()))


def test_unknown_ids_fail_or_are_dropped(run_cli, tmp_path):
    queries, corpus, positives = data(seed=4, n=80, m=5)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives, extra=[("q99", "d1", 1), ("q1", "nope", 1)])
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "-o", tmp_path / "o.parquet")
    assert r.exit_code == 2
    assert r.stderr.startswith("error:") and "q99" in r.stderr and "2 of" in r.stderr
    assert not (tmp_path / "o.parquet").exists()
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--ignore-missing", "-o", tmp_path / "o.parquet")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["qrels"]["dropped_missing"] == 2


# -- mine once, filter many -----------------------------------------------------------------------

@pytest.mark.parametrize("first,second", [
    (SelectionSpec(range_max=30, relative_margin=0.02), SelectionSpec(range_max=30, relative_margin=0.1)),
    (SelectionSpec(range_max=30), SelectionSpec(range_max=20, absolute_margin=0.05, range_min=2, negatives=5)),
    (SelectionSpec(negatives=8, relative_margin=0.1), SelectionSpec(negatives=3, relative_margin=0.1,
                                                                     max_score=0.9)),
    (SelectionSpec(range_max=15, max_positive_similarity=0.9),
     SelectionSpec(range_max=15, max_positive_similarity=0.5, sampling="random", seed=3)),
    (SelectionSpec(range_max=20), SelectionSpec(range_max=20, max_positive_similarity=0.7, min_score=0.1)),
    (SelectionSpec(negatives=4), SelectionSpec(negatives=2, range_min=1)),
])
def test_from_candidates_equals_one_pass(run_cli, tmp_path, first, second):
    queries, corpus, positives = data(seed=6, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)

    def flags(spec):
        out = ["--negatives", str(spec.negatives), "--range-min", str(spec.range_min), "--sampling", spec.sampling,
               "--seed", str(spec.seed)]
        for name in ("range_max", "relative_margin", "absolute_margin", "max_score", "min_score",
                     "max_positive_similarity"):
            if getattr(spec, name) is not None:
                out += ["--" + name.replace("_", "-"), str(getattr(spec, name))]
        return out

    saved = tmp_path / "cands.parquet"
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, *flags(first), "--save-candidates", saved,
                 "-o", tmp_path / "first.parquet")
    assert r.exit_code == 0, r.stderr
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, *flags(second), "-o", tmp_path / "one.parquet")
    assert r.exit_code == 0, r.stderr
    r2 = run_cli("mine", "--from-candidates", saved, *flags(second), "-o", tmp_path / "two.parquet", "--json")
    assert r2.exit_code == 0, r2.stderr
    assert json.loads(r2.stdout)["certainty"]["certain"] is True
    one, two = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "two.parquet")
    assert one.to_pydict() == two.to_pydict()


def test_from_candidates_says_when_it_cannot_be_sure(tmp_path):
    queries, corpus, positives = data(seed=6, n=150, m=12)
    result = mine_retrieval(corpus, queries, judged(positives), SelectionSpec(range_max=5), SearchSpec())
    wider = mine_from_candidates(result.candidates, SelectionSpec(range_max=20))
    assert wider.certainty == {"certain": False, "uncertain_queries": 12}
    narrower = mine_from_candidates(result.candidates, SelectionSpec(range_max=4, negatives=2))
    assert narrower.certainty["certain"]
    again = mine_retrieval(corpus, queries, judged(positives), SelectionSpec(range_max=4, negatives=2), SearchSpec())
    assert np.array_equal(narrower.selection.rows, again.selection.rows)


def test_margin_sweep_equals_separate_runs(run_cli, tmp_path):
    queries, corpus, positives = data(seed=8, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--relative-margins", "0,0.02,0.05,0.1", "--negatives", "4")
    assert r.exit_code == 0, r.stderr
    sweep = json.loads(r.stdout)["sweep"]
    for row in sweep:
        spec = SelectionSpec(negatives=4, relative_margin=row["relative_margin"])
        expect = oracle(queries, corpus, positives, spec)
        assert row["negatives"] == sum(map(len, expect.values()))
        assert row["short_queries"] == sum(len(v) < 4 for v in expect.values())


def test_a_sweep_does_not_change_the_run_own_selection(run_cli, tmp_path):
    """The lists must be deep enough for the run's own --relative-margin too, not only for
    the sweep's largest value (a sweep of small margins once cut a strict run short)."""
    queries, corpus, positives = data(seed=8, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--relative-margin", "0.4", "--relative-margins", "0,0.01",
                 "--negatives", "4")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    expect = oracle(queries, corpus, positives, SelectionSpec(negatives=4, relative_margin=0.4))
    assert report["negatives"] == sum(map(len, expect.values()))
    assert report["certainty"]["certain"] is True


# -- outputs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,suffix", [("triplet", "parquet"), ("triplet", "csv"), ("triplet", "jsonl"),
                                        ("n-tuple", "parquet"), ("n-tuple", "csv"), ("labeled-pair", "jsonl"),
                                        ("labeled-list", "parquet"), ("labeled-list", "jsonl"),
                                        ("flagembedding", "jsonl")])
def test_formats_load_and_texts_come_first(run_cli, tmp_path, fmt, suffix):
    queries, corpus, positives = data(seed=9, n=100, m=8)
    write_inputs(tmp_path, queries, corpus, texts=True)
    qrels = write_qrels(tmp_path, positives)
    out = tmp_path / f"out.{suffix}"
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--format", fmt, "--text-column", "text",
                 "--relative-margin", "0.05", "--negatives", "3", "-o", out)
    assert r.exit_code == 0, r.stderr
    if suffix == "parquet":
        table = pq.read_table(out)
        names, rows = table.column_names, table.to_pylist()
        provenance = json.loads(table.schema.metadata[b"embedkit"])
    elif suffix == "csv":
        import pyarrow.csv as pacsv
        table = pacsv.read_csv(out)
        names, rows = table.column_names, table.to_pylist()
        provenance = json.loads(Path(f"{out}.provenance.json").read_text())
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        names = list(rows[0])
        provenance = json.loads(Path(f"{out}.provenance.json").read_text())
    assert provenance["parameters"]["relative_margin"] == 0.05 and provenance["embedkit_version"]
    assert provenance["inputs"]["qrels"] == str(qrels)
    expect = oracle(queries, corpus, positives, SelectionSpec(relative_margin=0.05))
    first = rows[0]
    if fmt == "triplet":
        assert names[:3] == ["query", "positive", "negative"]
        assert names[3:] == ["query_id", "positive_id", "negative_id", "positive_score", "negative_score",
                             "negative_rank"]
        assert first["query"] == f"question {first['query_id'][1:]}"
        assert first["negative"] == f"passage {first['negative_id'][1:]}"
        assert len(rows) == sum(len(expect[q]) * len(positives[q]) for q in expect)
    elif fmt == "n-tuple":
        assert names[:5] == ["query", "positive", "negative_1", "negative_2", "negative_3"]
        assert "negative_3_id" in names and "negative_3_score" in names
        assert len(rows) == sum(len(positives[q]) for q in expect if len(expect[q]) == 3)
    elif fmt == "labeled-pair":
        assert names == ["query", "positive", "label", "score", "query_id", "doc_id"]
        assert sum(row["label"] == 0 for row in rows) == sum(map(len, expect.values()))
    elif fmt == "labeled-list":
        assert names[:3] == ["query", "positive", "labels"]
        assert first["labels"][0] == 1 and set(first["labels"][1:]) == {0}
        assert len(first["positive"]) == len(first["labels"]) == len(first["scores"])
    else:
        assert names[:3] == ["query", "pos", "neg"]
        assert all(isinstance(row["pos"], list) and isinstance(row["neg"], list) for row in rows)
        q = int(first["query_id"][1:])
        assert first["neg"] == [f"passage {d}" for d in expect[q]]


def test_triplet_scores_and_ranks_are_the_definitions(tmp_path):
    queries, corpus, positives = data(seed=10, n=100, m=5)
    result = mine_retrieval(corpus, queries, judged(positives), SelectionSpec(negatives=3), SearchSpec())
    from embedkit.mining.retrieval_output import training_columns
    cols, _ = training_columns(result, "triplet", query_ids=np.arange(5), doc_ids=np.arange(100))
    for q, p, n, ps, ns, rank in zip(*(cols[k] for k in ("query_id", "positive_id", "negative_id", "positive_score",
                                                          "negative_score", "negative_rank"))):
        s = _scores(queries[q], corpus, "cosine")
        assert ps == pytest.approx(s[p], abs=1e-5) and ns == pytest.approx(s[n], abs=1e-5)
        assert rank == 1 + int((s > s[n]).sum())


# -- CLI --------------------------------------------------------------------------------------------

def test_cli_refuses_options_of_the_other_mode(run_cli, tmp_path):
    queries, corpus, positives = data(seed=1, n=50, m=4)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--strategy", "hard")
    assert r.exit_code == 2 and r.stderr.startswith("error: --strategy applies to label mining")
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--metric", "euclidean")
    assert r.exit_code == 2 and "cosine or dot" in r.stderr
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--sampling", "random")
    assert r.exit_code == 2 and "--range-max" in r.stderr
    r = run_cli("mine", tmp_path / "corpus.parquet", "--relative-margin", "0.05")
    assert r.exit_code == 2 and r.stderr.startswith("error: --relative-margin applies to retrieval mining")
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--format", "flagembedding", "-o", tmp_path / "x.jsonl")
    assert r.exit_code == 2 and "--text-column" in r.stderr
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--format", "labeled-list", "-o", tmp_path / "x.csv")
    assert r.exit_code == 2 and ".parquet" in r.stderr
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "-o", tmp_path / "qrels.csv")
    assert r.exit_code == 2 and "also an input" in r.stderr
    assert not list(tmp_path.glob("x.*"))


def test_cli_report_and_defaults(run_cli, tmp_path):
    queries, corpus, positives = data(seed=1, n=80, m=6)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--relative-margin", "0.05", "--range-max", "10")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["params"]["negatives"] == 3 and payload["search"]["metric"] == "cosine"
    assert set(payload["scores"]) == {"positive", "negative", "difference"}
    assert payload["scores"]["positive"]["count"] == 12
    assert "relative_margin" in payload["removed"]
    r = run_cli("mine", tmp_path / "corpus.parquet", "--queries", tmp_path / "queries.parquet", "--id-column", "id",
                "--qrels", qrels, "--relative-margin", "0.05")
    assert r.exit_code == 0, r.stderr
    for text in ("Positive", "Negative", "Difference", "removed", "--relative-margin", "fewer than 3", "exact"):
        assert text in r.stdout


def test_approximate_index_reports_recall(run_cli, tmp_path):
    queries, corpus, positives = data(seed=2, n=400, m=20)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--range-max", "20", "--index", "hnsw", "--check-recall", "10")
    assert r.exit_code == 0, r.stderr
    search = json.loads(r.stdout)["search"]
    assert search["index"] == "hnsw" and search["recall"]["queries"] == 10
    assert 0.9 <= search["recall"]["value"] <= 1.0  # HNSW on 400 points is near exact


def test_row_number_ids_with_npy(run_cli, tmp_path):
    queries, corpus, positives = data(seed=3, n=60, m=4)
    np.save(tmp_path / "c.npy", corpus)
    np.save(tmp_path / "q.npy", queries)
    (tmp_path / "qrels.tsv").write_text("".join(f"{q}\t{d}\n" for q, ds in positives.items() for d in ds))
    (tmp_path / "qrels.tsv").write_text("query_id\tdoc_id\n" + (tmp_path / "qrels.tsv").read_text())
    r = run_cli("mine", tmp_path / "c.npy", "--queries", tmp_path / "q.npy", "--qrels", tmp_path / "qrels.tsv",
                "-o", tmp_path / "o.csv", "--json")
    assert r.exit_code == 0, r.stderr
    import pyarrow.csv as pacsv
    t = pacsv.read_csv(tmp_path / "o.csv").to_pydict()
    expect = oracle(queries, corpus, positives, SelectionSpec())
    assert sorted(set(zip(t["query_id"], t["negative_id"]))) == sorted((q, d) for q, v in expect.items() for d in v)


def test_from_candidates_warns_when_the_saved_window_is_narrower(run_cli, tmp_path):
    queries, corpus, positives = data(seed=6, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    saved = tmp_path / "cands.parquet"
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--range-max", "5", "--save-candidates", saved)
    assert r.exit_code == 0, r.stderr
    table = pq.read_table(saved)
    assert table.column_names[:4] == ["query_id", "query_row", "doc_id", "doc_row"]
    assert sum(table["positive"].to_pylist()) == sum(map(len, positives.values()))
    r = run_cli("mine", "--from-candidates", saved, "--range-max", "20")
    assert r.exit_code == 0, r.stderr
    assert "may be too short for 12 queries" in r.stdout
    r = run_cli("mine", "--from-candidates", saved, "--qrels", qrels)
    assert r.exit_code == 2 and "drop --qrels" in r.stderr
    r = run_cli("mine", "--from-candidates", tmp_path / "qrels.csv")
    assert r.exit_code == 2 and r.stderr.startswith("error:")
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--save-candidates", tmp_path / "c.csv")
    assert r.exit_code == 2 and "Parquet" in r.stderr


def test_library_stays_free_of_the_cli():
    import subprocess
    import sys

    code = ("import sys, embedkit.mining.retrieval_job, embedkit.mining.retrieval_output; "
            "print('typer' in sys.modules or 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_deep_lists_beyond_the_budget_are_refused_not_allocated():
    queries, corpus, positives = data(seed=3, n=400)
    spec = SelectionSpec(negatives=3, max_score=-0.6)
    with pytest.raises(OptionError, match="--range-max"):
        mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec(), execution=Execution(budget_mib=0.01))


def test_labeled_formats_without_texts_lead_with_ids():
    queries, corpus, positives = data(seed=11, n=80, m=4)
    result = mine_retrieval(corpus, queries, judged(positives), SelectionSpec(negatives=2), SearchSpec())
    from embedkit.mining.retrieval_output import training_columns
    ids = {"query_ids": np.arange(4), "doc_ids": np.arange(80)}
    pair, _ = training_columns(result, "labeled-pair", **ids)
    assert list(pair) == ["query_id", "doc_id", "label", "score"]
    expect = oracle(queries, corpus, positives, SelectionSpec(negatives=2))
    first = [(int(d), int(lab)) for q, d, lab in zip(pair["query_id"], pair["doc_id"], pair["label"]) if q == 0]
    assert first == [(d, 1) for d in positives[0]] + [(d, 0) for d in expect[0]]
    listed, _ = training_columns(result, "labeled-list", **ids)
    assert list(listed) == ["query_id", "doc_ids", "labels", "scores"]
    assert listed["doc_ids"][0] == [positives[0][0], *expect[0]] and listed["labels"][0] == [1, 0, 0]


def test_lists_are_ragged_and_blocks_do_not_change_the_selection():
    queries, corpus, positives = data(seed=3, n=400)
    spec = SelectionSpec(negatives=3, max_score=0.3)
    whole = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec())
    lengths = whole.candidates.lengths
    assert lengths.min() < lengths.max()  # only the queries that needed it were searched deeper
    tiny = 0.02  # a few queries per padded block of the selection (and lists still within 16 budgets)
    assert len(list_chunks(lengths, tiny)) > 10 and len(list_chunks(lengths, 64.0)) == 1
    blocked = mine_retrieval(corpus, queries, judged(positives), spec, SearchSpec(), execution=Execution(budget_mib=tiny))
    assert np.array_equal(whole.selection.rows, blocked.selection.rows)
    assert whole.removed == blocked.removed
    rand = SelectionSpec(negatives=3, range_max=25, sampling="random", seed=4)
    a = mine_retrieval(corpus, queries, judged(positives), rand, SearchSpec(), execution=Execution(budget_mib=tiny))
    b = mine_retrieval(corpus, queries, judged(positives), rand, SearchSpec())
    assert np.array_equal(a.selection.rows, b.selection.rows)


def test_workers_do_not_change_the_result(run_cli, tmp_path):
    queries, corpus, positives = data(seed=12, n=120, m=8)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.parquet"
        r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--workers", workers, "--relative-margin", "0.05",
                     "--budget-mib", "0.01", "-o", out)
        assert r.exit_code == 0, r.stderr
        outs.append(pq.read_table(out).to_pydict())
    assert outs[0] == outs[1]


def test_shard_folder_corpus_mines_as_one_file(run_cli, tmp_path):
    queries, corpus, positives = data(seed=13, n=90, m=5)
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "part-0.npy", corpus[:50])
    np.save(tmp_path / "shards" / "part-1.npy", corpus[50:])
    np.save(tmp_path / "c.npy", corpus)
    np.save(tmp_path / "q.npy", queries)
    (tmp_path / "qrels.tsv").write_text("query_id\tdoc_id\n" + "".join(
        f"{q}\t{d}\n" for q, ds in positives.items() for d in ds))
    got = []
    for source in ("shards", "c.npy"):
        r = run_cli("mine", tmp_path / source, "--queries", tmp_path / "q.npy", "--qrels", tmp_path / "qrels.tsv",
                    "-o", tmp_path / f"{source}.csv".replace("/", "_"), "--json", "-q")
        assert r.exit_code == 0, r.stderr
        got.append((tmp_path / f"{source}.csv").read_text())
    assert got[0] == got[1]
    r = run_cli("mine", tmp_path / "shards", "--queries", tmp_path / "q.npy", "--qrels", tmp_path / "qrels.tsv",
                "-o", tmp_path / "shards" / "out.parquet")
    assert r.exit_code == 2 and "shard" in r.stderr


def test_from_candidates_with_too_few_queries_is_one_error(run_cli, tmp_path):
    queries, corpus, positives = data(seed=6, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    saved = tmp_path / "cands.parquet"
    r = cli_mine(run_cli, tmp_path, "--qrels", qrels, "--range-max", "10", "--save-candidates", saved)
    assert r.exit_code == 0, r.stderr
    pq.write_table(pa.table({"id": ["q0", "q1"], "embedding": list(queries[:2])}), tmp_path / "few.parquet")
    r = run_cli("mine", "--from-candidates", saved, "--queries", tmp_path / "few.parquet", "--id-column", "id",
                "--json")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "few.parquet: 2 rows but the candidates name query row" in r.stderr
    assert "Traceback" not in r.stderr


def test_retrieval_outputs_get_wrote_lines(run_cli, tmp_path):
    queries, corpus, positives = data(seed=6, n=150, m=12)
    write_inputs(tmp_path, queries, corpus)
    qrels = write_qrels(tmp_path, positives)
    out, saved = tmp_path / "t.parquet", tmp_path / "cands.parquet"
    r = run_cli("mine", tmp_path / "corpus.parquet", "--queries", tmp_path / "queries.parquet", "--id-column", "id",
                "--qrels", qrels, "--range-max", "10", "-o", out, "--save-candidates", saved)
    assert r.exit_code == 0, r.stderr
    rows = pq.read_table(out).num_rows
    assert f"wrote {out} ({rows:,} rows)" in r.stderr and f"wrote {saved} (candidate lists)" in r.stderr
