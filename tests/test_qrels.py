"""The qrels reader: every format, canonical ids, grades, errors; ids resolved to rows."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedkit.errors import InputError, OptionError
from embedkit.qrels import Qrels, canonical_ids, read_qrels, resolve_qrels

EXPECTED = (["q1", "q1", "q2"], ["d1", "d7", "3"], [2, 0, 1])


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _same(q: Qrels, expected=EXPECTED) -> None:
    assert q.query_ids.tolist() == expected[0]
    assert q.doc_ids.tolist() == expected[1]
    assert q.relevance.tolist() == expected[2]
    assert q.relevance.dtype == np.int64


@pytest.mark.parametrize("name,text", [
    ("q.csv", "query_id,doc_id,relevance\nq1,d1,2\nq1,d7,0\nq2,3,1\n"),
    ("q.tsv", "query_id\tdoc_id\trelevance\nq1\td1\t2\nq1\td7\t0\nq2\t3\t1\n"),
    ("beir.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td7\t0\nq2\t3\t1\n"),
    ("q.csv", "query_id,doc_id,score\nq1,d1,2\nq1,d7,0\nq2,3,1\n"),
    ("trec.txt", "q1 0 d1 2\nq1 0 d7 0\n\nq2\t0\t3\t1\n"),
    ("q.txt", "query_id,doc_id,relevance\nq1,d1,2.0\nq1,d7,0\nq2,3,1\n"),  # whole floats are ints
    ("q.jsonl", '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n{"query_id": "q1", "doc_id": "d7", '
                '"relevance": 0}\n{"query_id": "q2", "doc_id": 3, "relevance": 1}\n'),
])
def test_text_formats(tmp_path, name, text):
    _same(read_qrels(_write(tmp_path, name, text)))


def test_parquet_with_integer_ids(tmp_path):
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"query_id": [1, 1, 2], "doc_id": [10, 7, 3], "relevance": [2, 0, 1]}), path)
    _same(read_qrels(str(path)), (["1", "1", "2"], ["10", "7", "3"], [2, 0, 1]))


def test_default_relevance_is_one_and_stdin(tmp_path):
    q = read_qrels("-", stdin=io.BytesIO(b"query_id,doc_id\na,b\na,c\n"))
    assert q.relevance.tolist() == [1, 1] and q.source == "stdin"


def test_graded_float_relevance(tmp_path):
    q = read_qrels(_write(tmp_path, "q.csv", "query_id,doc_id,relevance\na,b,0.5\na,c,2\n"))
    assert q.relevance.dtype == np.float64 and q.relevance.tolist() == [0.5, 2.0]


def test_ids_keep_their_text(tmp_path):
    # "007" is not "7": ids are text; only integer-typed ids are rendered as decimals.
    q = read_qrels(_write(tmp_path, "q.csv", "query_id,doc_id\n007,0.5\n"))
    assert q.query_ids.tolist() == ["007"] and q.doc_ids.tolist() == ["0.5"]


def test_same_pair_twice_with_same_grade_is_kept_once(tmp_path):
    q = read_qrels(_write(tmp_path, "q.txt", "1 0 a 1\n1 0 b 1\n1 0 a 1\n"))
    assert q.doc_ids.tolist() == ["a", "b"]


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("query_id,relevance\na,1\n", "no document id column"),
    ("doc_id,relevance\na,1\n", "no query id column"),
    ("query_id,doc_id\n", "no judgements"),
    ("query_id,doc_id,relevance\na,b,high\n", "relevance 'high' on row 1 is not a number"),
    ("query_id,doc_id,relevance\na,b,nan\n", "not a finite number"),
    ("1 0 a 1\n1 0 a 2\n", "judged twice with different grades (1 and 2)"),
    ("1 0 a 1\n1 0 a\n", "line 2 has 3 fields"),
    ('{"query_id": "a", "doc_id": "b"}\n{"query_id": "a"}\n', "line 2 has no usable 'doc_id'"),
    ('{"query_id": "a", "doc_id": "b"}\nnot json\n', "line 2 is not valid JSON"),
])
def test_errors_name_the_file(tmp_path, text, message):
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError) as err:
        read_qrels(path)
    assert message in str(err.value) and str(err.value).startswith(path)
    assert "\n" not in str(err.value)


def test_missing_file_and_binary(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_qrels(str(tmp_path / "nope.tsv"))
    path = tmp_path / "b.bin"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="neither Parquet nor UTF-8"):
        read_qrels(str(path))


def test_canonical_ids():
    assert canonical_ids(np.array([7, 10], dtype=np.int32)).tolist() == ["7", "10"]
    assert canonical_ids(np.array([7.0, 8.0])).tolist() == ["7", "8"]
    assert canonical_ids(np.array([b"x"])).tolist() == ["x"]
    assert canonical_ids(np.array([7, "a"], dtype=object)).tolist() == ["7", "a"]


QRELS = Qrels(np.array(["q2", "q1", "q1"]), np.array(["7", "3", "x"]), np.array([1, 2, 0]), "qrels.tsv")


def test_resolve_maps_ids_to_rows_sorted():
    r = resolve_qrels(QRELS, np.array(["q1", "q2"]), np.array(["x", 3, 7], dtype=object))
    assert r.query_rows.tolist() == [0, 0, 1]
    assert r.doc_rows.tolist() == [0, 1, 2]
    assert r.relevance.tolist() == [0, 2, 1] and r.dropped == 0


def test_integer_ids_match_text_ids():
    q = Qrels(np.array(["0", "1"]), np.array(["7", "8"]), np.array([1, 1]), "r")
    r = resolve_qrels(q, None, np.array([8, 7], dtype=np.int64), n_queries=2)
    assert r.query_rows.tolist() == [0, 1] and r.doc_rows.tolist() == [1, 0]


def test_unknown_ids_error_names_first_and_count():
    with pytest.raises(InputError) as err:
        resolve_qrels(QRELS, np.array(["q1"]), np.array(["3", "7", "x"]), doc_source="corpus.npy")
    text = str(err.value)
    assert text.startswith("qrels.tsv: 1 of 3 judgement(s)") and "query id 'q2'" in text and "--ignore-missing" in text
    with pytest.raises(InputError, match="document id 'x' is not among the ids of corpus.npy"):
        resolve_qrels(QRELS, np.array(["q1", "q2"]), np.array(["3", "7"]), doc_source="corpus.npy")


def test_ignore_missing_drops_and_counts():
    r = resolve_qrels(QRELS, np.array(["q1"]), np.array(["3", "7"]), ignore_missing=True)
    assert r.dropped == 2 and r.query_rows.tolist() == [0] and r.doc_rows.tolist() == [0]


def test_duplicate_dataset_ids_are_an_error():
    with pytest.raises(InputError, match="id '3' appears more than once \\(rows 0 and 2\\)"):
        resolve_qrels(QRELS, np.array(["q1", "q2"]), np.array(["3", "7", "3", "x"]), doc_source="c")


def test_row_numbers_need_a_count():
    with pytest.raises(OptionError):
        resolve_qrels(QRELS, None, np.array(["3"]))


def test_pairs_are_not_confused_by_concatenation(tmp_path):
    # ("q1", "0d") and ("q10", "d") concatenate to the same text; they are different pairs.
    q = read_qrels(_write(tmp_path, "q.txt", "q1 0 0d 1\nq10 0 d 2\n"))
    assert q.query_ids.tolist() == ["q1", "q10"] and q.relevance.tolist() == [1, 2]


def test_row_number_ids_match_only_their_canonical_text():
    q = Qrels(np.array(["0", "0", "0", "0", "0", "0"]), np.array(["2", "02", "٣", "9", "-1", "1"]),
              np.ones(6, np.int64), "r")
    r = resolve_qrels(q, None, None, n_queries=1, n_docs=5, ignore_missing=True)
    assert r.doc_rows.tolist() == [1, 2] and r.dropped == 4
    # The same answer as matching against explicit row-number ids.
    explicit = resolve_qrels(q, np.array([0]), np.arange(5), ignore_missing=True)
    assert explicit.doc_rows.tolist() == [1, 2] and explicit.dropped == 4
