"""Relevance judgements (qrels): the one reader, and ids resolved to dataset rows.

Formats, told by content (not by the file name):

- **Parquet** (``PAR1`` magic), **JSON lines** (first character ``{``), **CSV** or **TSV**
  (a header line; tab-separated when the header holds a tab) with columns ``query_id``,
  ``doc_id`` and an optional grade column ``relevance`` (or ``score``). BEIR's header
  ``query-id, corpus-id, score`` is accepted too. Without a grade column every row has
  relevance 1.
- **TREC qrels**: ``qid iter docid rel`` per line, whitespace-separated, no header (the
  ``iter`` field, usually ``0``, is ignored). A file is TREC when its first non-blank line
  has four fields, no header name among them, and a numeric last field.
- ``-`` reads stdin.

Ids are compared as *canonical text*: integers as their decimal text (``7`` and ``"7"``
are the same id), strings as they are. Grades are int64 when every grade is a whole
number, else float64. A grade ``<= 0`` means judged non-relevant. A (query, document)
pair listed twice with the same grade is kept once; with different grades it is an error.
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from embedkit.errors import InputError, OptionError

STDIN = "-"
PARQUET_MAGIC = b"PAR1"
QUERY_COLUMNS = ("query_id", "query-id")
DOC_COLUMNS = ("doc_id", "corpus-id", "corpus_id")
GRADE_COLUMNS = ("relevance", "score")


@dataclass(frozen=True)
class Qrels:
    """Judgements, one per (query, document) pair, in file order.

    ``query_ids`` and ``doc_ids`` are arrays of canonical str ids; ``relevance`` is int64
    (float64 when a grade is not a whole number); ``source`` names the file (or ``stdin``)."""

    query_ids: np.ndarray
    doc_ids: np.ndarray
    relevance: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(len(self.query_ids))


@dataclass(frozen=True)
class JudgedRows:
    """Judgements resolved to row positions: ``queries[query_rows[j]]`` judged
    ``corpus[doc_rows[j]]`` with grade ``relevance[j]``; sorted by (query row, doc row).

    ``dropped`` counts qrels rows dropped by ``ignore_missing`` (an id the inputs lack)."""

    query_rows: np.ndarray
    doc_rows: np.ndarray
    relevance: np.ndarray
    dropped: int = 0


def canonical_ids(values: np.ndarray | list[object]) -> np.ndarray:
    """Ids as canonical text: integers (and whole floats) as decimal text, bytes decoded.

    >>> canonical_ids(np.array([7, 10])).tolist(), canonical_ids(["7", "a"]).tolist()
    (['7', '10'], ['7', 'a'])
    """
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64).astype(str)
    if array.dtype.kind == "f":
        if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(np.int64).astype(str)
        return array.astype(str)
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8")
    if array.dtype.kind == "U":
        return array
    return np.array([_canonical_one(v) for v in array.tolist()], dtype=str) if len(array) else np.array([], dtype=str)


def _canonical_one(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def row_ids(n: int) -> np.ndarray:
    """The ids of a dataset without an id column: its row numbers as text."""
    return np.arange(n, dtype=np.int64).astype(str)


# -- reading -----------------------------------------------------------------------------------


def read_qrels(path: str, *, stdin: BinaryIO | None = None) -> Qrels:
    """Read a qrels file (see the module docstring for the formats); ``-`` reads stdin.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("q1 0 d1 2\\nq1 0 d7 0\\n")
    >>> q = read_qrels(f.name); os.unlink(f.name)
    >>> q.query_ids.tolist(), q.doc_ids.tolist(), q.relevance.tolist()
    (['q1', 'q1'], ['d1', 'd7'], [2, 0])
    """
    source = "stdin" if path == STDIN else path
    data = _read_bytes(path, stdin)
    if not data.strip():
        raise InputError(f"{source}: qrels file is empty")
    if data.startswith(PARQUET_MAGIC):
        queries, docs, grades = _read_parquet(data, source)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{source}: qrels file is neither Parquet nor UTF-8 text") from None
        first = next(line for line in text.splitlines() if line.strip())
        if first.lstrip().startswith("{"):
            queries, docs, grades = _read_jsonl(text, source)
        elif _looks_trec(first):
            queries, docs, grades = _read_trec(text, source)
        else:
            queries, docs, grades = _read_csv(data, source, delimiter="\t" if "\t" in first else ",")
    if len(queries) == 0:
        raise InputError(f"{source}: qrels file has no judgements")
    relevance = _parse_grades(grades, source)
    return _deduplicated(canonical_ids(queries), canonical_ids(docs), relevance, source)


def _read_bytes(path: str, stdin: BinaryIO | None) -> bytes:
    if path == STDIN:
        data = (stdin if stdin is not None else sys.stdin.buffer).read()
        if not data:
            raise InputError("stdin: no data (expected qrels; give a file path, or pipe the data in)")
        return bytes(data)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a qrels file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _looks_trec(line: str) -> bool:
    fields = line.split()
    names = {*QUERY_COLUMNS, *DOC_COLUMNS, *GRADE_COLUMNS}
    return len(fields) == 4 and not names & {f.strip('"').lower() for f in fields} and _is_number(fields[3])


def _read_trec(text: str, source: str) -> tuple[list[str], list[str], list[str]]:
    queries: list[str] = []
    docs: list[str] = []
    grades: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise InputError(
                f"{source}: line {number} has {len(fields)} fields; a TREC qrels line is 'qid 0 docid rel'"
            )
        queries.append(fields[0])
        docs.append(fields[2])
        grades.append(fields[3])
    return queries, docs, grades


def _pick(names: list[str], wanted: tuple[str, ...], source: str, role: str, *, required: bool) -> str | None:
    for name in wanted:
        if name in names:
            return name
    if required:
        raise InputError(
            f"{source}: no {role} column (expected {' or '.join(wanted)}; has: {', '.join(names) or 'nothing'})"
        )
    return None


def _read_csv(data: bytes, source: str, *, delimiter: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        names = [n.strip() for n in _header(data, delimiter)]
        qcol = _pick(names, QUERY_COLUMNS, source, "query id", required=True)
        dcol = _pick(names, DOC_COLUMNS, source, "document id", required=True)
        gcol = _pick(names, GRADE_COLUMNS, source, "relevance", required=False)
        wanted = [c for c in (qcol, dcol, gcol) if c is not None]
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted, column_types={c: pa.string() for c in wanted},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise InputError(f"{source}: not a readable {kind} qrels table ({first})") from None
    queries = table.column(qcol).to_numpy(zero_copy_only=False).astype(str)
    docs = table.column(dcol).to_numpy(zero_copy_only=False).astype(str)
    grades = table.column(gcol).to_numpy(zero_copy_only=False).astype(str) if gcol else None
    for name, values in ((qcol, queries), (dcol, docs)):
        empty = np.flatnonzero(np.char.str_len(np.char.strip(values)) == 0) if len(values) else []
        if len(empty):
            raise InputError(f"{source}: column '{name}' is empty on data row {int(empty[0]) + 1}")
    return queries, docs, grades


def _header(data: bytes, delimiter: str) -> list[str]:
    import csv

    line = data.decode("utf-8-sig").splitlines()[0] if data else ""
    return next(csv.reader([line], delimiter=delimiter))


def _read_parquet(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        names = list(file.schema_arrow.names)
        qcol = _pick(names, QUERY_COLUMNS, source, "query id", required=True)
        dcol = _pick(names, DOC_COLUMNS, source, "document id", required=True)
        gcol = _pick(names, GRADE_COLUMNS, source, "relevance", required=False)
        table = file.read(columns=[c for c in (qcol, dcol, gcol) if c is not None])
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a readable Parquet qrels file ({exc})") from None
    out = []
    for name in (qcol, dcol, gcol):
        if name is None:
            out.append(None)
            continue
        column = table.column(name)
        if column.null_count:
            first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{source}: column '{name}' is null on row {first}")
        out.append(column.to_numpy(zero_copy_only=False))
    return out[0], out[1], out[2]  # type: ignore[return-value]


def _read_jsonl(text: str, source: str) -> tuple[list[object], list[object], list[object] | None]:
    queries: list[object] = []
    docs: list[object] = []
    grades: list[object] = []
    qcol = dcol = gcol = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{source}: line {number} is not a JSON object")
        if qcol is None:
            names = list(record)
            qcol = _pick(names, QUERY_COLUMNS, source, "query id", required=True)
            dcol = _pick(names, DOC_COLUMNS, source, "document id", required=True)
            gcol = _pick(names, GRADE_COLUMNS, source, "relevance", required=False)
        for name in (qcol, dcol):
            value = record.get(name)
            if value is None or isinstance(value, (dict, list)) or value == "":
                raise InputError(f"{source}: line {number} has no usable '{name}'")
        queries.append(record[qcol])
        docs.append(record[dcol])
        if gcol is not None:
            grades.append(record.get(gcol))
    return queries, docs, grades if gcol is not None else None


def _parse_grades(grades: np.ndarray | list[object] | None, source: str) -> np.ndarray:
    """Grades as int64 when all are whole numbers, else float64; an unparsable grade is an error."""
    if grades is None:
        return np.ones(0, dtype=np.int64)  # sized by the caller
    values = np.empty(len(grades), dtype=np.float64)
    for row, raw in enumerate(grades.tolist() if isinstance(grades, np.ndarray) else grades):
        try:
            if isinstance(raw, bool) or raw is None:
                raise ValueError
            value = float(raw.strip() if isinstance(raw, str) else raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"{source}: relevance {raw!r} on row {row + 1} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{source}: relevance {raw!r} on row {row + 1} is not a finite number")
        values[row] = value
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values


def pair_codes(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One int64 code per (first, second) pair of ids: equal pairs get equal codes."""
    _, a = np.unique(first, return_inverse=True)
    names, b = np.unique(second, return_inverse=True)
    return a.astype(np.int64).ravel() * max(1, len(names)) + b.astype(np.int64).ravel()


def _deduplicated(queries: np.ndarray, docs: np.ndarray, relevance: np.ndarray, source: str) -> Qrels:
    if len(relevance) == 0:
        relevance = np.ones(len(queries), dtype=np.int64)
    pairs = pair_codes(queries, docs)
    unique, first, inverse = np.unique(pairs, return_index=True, return_inverse=True)
    if len(unique) < len(pairs):
        # Every duplicate must repeat the grade of the pair's first occurrence.
        differs = relevance != relevance[first[inverse]]
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            raise InputError(
                f"{source}: query '{queries[row]}' and document '{docs[row]}' are judged twice with "
                f"different grades ({relevance[first[inverse[row]]]} and {relevance[row]})"
            )
        keep = np.sort(first)
        queries, docs, relevance = queries[keep], docs[keep], relevance[keep]
    return Qrels(queries, docs, relevance, source)


# -- resolving ids to rows ----------------------------------------------------------------------


def _index_of(ids: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted_ids, order)`` of a dataset's ids; a duplicate id is an error."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1]) if len(ordered) > 1 else np.empty(0, np.int64)
    if len(same):
        first = ordered[same[0]]
        rows = np.sort(order[ordered == first])[:2]
        raise InputError(f"{source}: id '{first}' appears more than once (rows {rows[0]} and {rows[1]}); "
                         "ids must be unique")
    return ordered, order


def _lookup(values: np.ndarray, ordered: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Row of each value in the dataset, ``-1`` when absent."""
    if len(ordered) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    where = np.searchsorted(ordered, values)
    safe = np.minimum(where, len(ordered) - 1)
    found = ordered[safe] == values
    return np.where(found, order[safe], -1).astype(np.int64)


def _row_number_lookup(values: np.ndarray, n: int) -> np.ndarray:
    """Row of each id when the ids are the row numbers ``"0" … str(n-1)``; ``-1`` when absent.

    Only the canonical text of a row number matches (ASCII digits, no leading zero)."""
    values = np.asarray(values, dtype=str)
    out = np.full(len(values), -1, dtype=np.int64)
    if len(values) == 0:
        return out
    length = np.char.str_len(values)
    ok = np.char.isdigit(values) & (length <= 18) & ((length == 1) | ~np.char.startswith(values, "0"))
    ok &= np.fromiter((v.isascii() for v in values.tolist()), dtype=bool, count=len(values))
    numbers = values[ok].astype(np.int64)
    out[np.flatnonzero(ok)] = np.where(numbers < n, numbers, -1)
    return out


def resolve_qrels(
    qrels: Qrels,
    query_ids: np.ndarray | None,
    doc_ids: np.ndarray | None,
    *,
    n_queries: int | None = None,
    n_docs: int | None = None,
    ignore_missing: bool = False,
    query_source: str = "the queries",
    doc_source: str = "the corpus",
) -> JudgedRows:
    """Map every judgement to a (query row, corpus row) pair.

    ``query_ids`` / ``doc_ids``: the datasets' id columns (any dtype; compared as canonical
    text), or ``None`` for row numbers ``"0", "1", ...`` (then ``n_queries`` / ``n_docs`` give
    the row counts). A judgement naming an id the datasets lack is an :class:`InputError`
    (naming the first such id and the count) unless ``ignore_missing``, which drops it and
    counts it in ``dropped``. Duplicate ids within a dataset are an error.

    >>> q = Qrels(np.array(["1", "0"]), np.array(["b", "a"]), np.array([1, 2]), "x")
    >>> r = resolve_qrels(q, None, np.array(["a", "b"]), n_queries=2)
    >>> r.query_rows.tolist(), r.doc_rows.tolist(), r.relevance.tolist()
    ([0, 1], [0, 1], [2, 1])
    """
    sides = []
    for ids, n, name, source in ((query_ids, n_queries, "query", query_source),
                                 (doc_ids, n_docs, "document", doc_source)):
        if ids is None:
            if n is None:
                raise OptionError(f"resolve_qrels: {name} ids are row numbers, so the row count is needed")
            canonical = row_ids(n)
        else:
            canonical = canonical_ids(ids)
            if n is not None and len(canonical) != n:
                raise OptionError(f"{source}: {len(canonical)} {name} ids for {n} rows")
        sides.append((canonical, name, source))
    rows = []
    for (canonical, _, source), wanted, ids in zip(sides, (qrels.query_ids, qrels.doc_ids), (query_ids, doc_ids)):
        if ids is None:  # row numbers: parse the qrels ids instead of sorting n strings
            rows.append(_row_number_lookup(wanted, len(canonical)))
            continue
        ordered, order = _index_of(canonical, source)
        rows.append(_lookup(wanted, ordered, order))
    query_rows, doc_rows = rows
    missing = (query_rows < 0) | (doc_rows < 0)
    dropped = int(missing.sum())
    if dropped and not ignore_missing:
        first = int(np.flatnonzero(missing)[0])
        side = 0 if query_rows[first] < 0 else 1
        wanted = (qrels.query_ids if side == 0 else qrels.doc_ids)[first]
        canonical, name, source = sides[side]
        what = f"{name} id '{wanted}' is not among the ids of {source}"
        if (query_ids, doc_ids)[side] is None and not str(wanted).isdigit():
            # Row-number ids and a qrels id that is no number: most likely the id column was not named.
            hint = (f"without --id-column the {name} ids are row numbers 0..{len(canonical) - 1}; "
                    "name the id column with --id-column (or --query-id-column)")
        else:
            hint = "pass --ignore-missing to drop them"
        raise InputError(
            f"{qrels.source}: {dropped} of {len(missing)} judgement(s) name ids the inputs lack (first: {what}); "
            + hint
        )
    keep = np.flatnonzero(~missing)
    query_rows, doc_rows, relevance = query_rows[keep], doc_rows[keep], qrels.relevance[keep]
    order = np.lexsort((doc_rows, query_rows))
    return JudgedRows(query_rows[order], doc_rows[order], relevance[order], dropped)
