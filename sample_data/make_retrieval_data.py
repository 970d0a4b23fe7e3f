"""Write tiny synthetic retrieval data: query and passage embeddings with ids and texts, and qrels.

    python sample_data/make_retrieval_data.py   # writes sample_data/retrieval_* (fixed seed)

- ``retrieval_corpus.parquet``: 2 000 passages, columns ``id`` (``p0000``…), ``text``,
  ``embedding`` (64 float32), drawn around 40 topic centres;
- ``retrieval_queries.parquet``: 300 queries, columns ``id`` (``q000``…), ``text``, ``embedding``;
- ``retrieval_qrels.tsv``: ``query_id, doc_id, relevance``: 1 or 2 positives per query (grade 2 for
  the closest), plus a few grade-0 judgements (judged not relevant: they stay candidates);
- ``retrieval_qrels.trec``: the same judgements as TREC qrels (``qid 0 docid rel``).

Every tenth query has an unlabelled near-duplicate of its positive in the corpus: the false
negative that ``--max-positive-similarity`` removes. numpy and pyarrow only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DOCS, QUERIES, DIM, TOPICS = 2000, 300, 64, 40


def main() -> None:
    rng = np.random.default_rng(13)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    topic_of_doc = rng.integers(0, TOPICS, DOCS)
    corpus = centres[topic_of_doc] + 0.9 * rng.standard_normal((DOCS, DIM)).astype(np.float32)
    topic_of_query = rng.integers(0, TOPICS, QUERIES)
    queries = centres[topic_of_query] + 0.9 * rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    qrels = []
    used = set()
    for q in range(QUERIES):
        count = 1 + int(rng.random() < 0.4)
        choices = [d for d in rng.permutation(DOCS)[:20] if d not in used][:count + 1]
        for j, d in enumerate(choices[:count]):
            used.add(int(d))
            corpus[d] = queries[q] + (0.35 + 0.2 * j) * rng.standard_normal(DIM).astype(np.float32)
            topic_of_doc[d] = topic_of_query[q]
            qrels.append((q, int(d), 2 if j == 0 else 1))
        if q % 10 == 0:  # an unlabelled near-duplicate of the first positive
            dup = int(choices[count])
            used.add(dup)
            corpus[dup] = corpus[qrels[-count][1]] + 0.05 * rng.standard_normal(DIM).astype(np.float32)
            topic_of_doc[dup] = topic_of_query[q]
        if q % 7 == 0:  # a judged non-relevant passage of the same topic
            same = np.flatnonzero(topic_of_doc == topic_of_query[q])
            other = [int(d) for d in same if int(d) not in {r[1] for r in qrels if r[0] == q}]
            if other:
                qrels.append((q, other[0], 0))
    doc_ids = [f"p{i:04d}" for i in range(DOCS)]
    query_ids = [f"q{i:03d}" for i in range(QUERIES)]
    doc_texts = [f"passage {i} on topic {t}" for i, t in enumerate(topic_of_doc)]
    query_texts = [f"question {i} about topic {t}?" for i, t in enumerate(topic_of_query)]

    def table(ids: list[str], texts: list[str], vectors: np.ndarray) -> pa.Table:
        values = pa.array(vectors.astype(np.float32).ravel())
        return pa.table({"id": ids, "text": texts, "embedding": pa.FixedSizeListArray.from_arrays(values, DIM)})

    pq.write_table(table(doc_ids, doc_texts, corpus), HERE / "retrieval_corpus.parquet")
    pq.write_table(table(query_ids, query_texts, queries), HERE / "retrieval_queries.parquet")
    with open(HERE / "retrieval_qrels.tsv", "w") as tsv, open(HERE / "retrieval_qrels.trec", "w") as trec:
        tsv.write("query_id\tdoc_id\trelevance\n")
        for q, d, rel in qrels:
            tsv.write(f"{query_ids[q]}\t{doc_ids[d]}\t{rel}\n")
            trec.write(f"{query_ids[q]} 0 {doc_ids[d]} {rel}\n")


if __name__ == "__main__":
    main()
