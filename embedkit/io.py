"""Loading a dataset: embeddings with their labels and ids, from one file, a folder or glob of
shards (:mod:`embedkit.shards`), or stdin.

NPY files are memory-mapped (:mod:`embedkit.npyfile`); Parquet is read one row group at a
time, straight from Arrow buffers into one preallocated matrix. Labels are found, in order
of precedence, from ``labels_path`` (``--labels``), the Parquet label column
(``label_column``, default ``label`` when present), the NPZ member ``labels``, then the
*sidecar* files next to the embeddings: for ``emb.npy`` (or ``emb.parquet``, ``emb.npz``)
the first of ``emb.labels.npy``, ``emb.labels.txt`` and ``emb.labels.csv`` that exists.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from embedkit.arrays import validate_embeddings
from embedkit.dataset import Dataset, LoadedEmbeddings, encode_labels, nonfinite_masks
from embedkit.errors import InputError
from embedkit.formats import STDIN, read_stdin_bytes
from embedkit.labelfile import load_labels
from embedkit.npyfile import load_npy, load_npz
from embedkit.shard_paths import open_pieces, sidecar_candidates, stream_piece
from embedkit.shards import FileReaders, read_pieces


def load_dataset(
    path: str | None,
    *,
    column: str | None = None,
    label_column: str | None = None,
    labels_path: str | None = None,
    id_column: str | None = None,
    stdin: BinaryIO | None = None,
    allow_nonfinite: bool = False,
) -> Dataset:
    """Load embeddings (and labels, ids) from ``path``, or stdin when it is ``None`` or ``-``.

    ``path`` may be one file, a folder or a glob pattern of shards (see
    :mod:`embedkit.shards`): rows are numbered in the sorted order of the shards, and
    ``Dataset.shards`` says which rows came from which file.
    ``allow_nonfinite=True`` accepts NaN/Inf rows (for commands that report them: see
    :func:`load_allowing_nonfinite`)."""
    from_stdin = path is None or path == STDIN
    source = "stdin" if from_stdin else str(path)
    if from_stdin:
        pieces = [stream_piece(read_stdin_bytes(stdin, expected="an NPY, NPZ, Parquet or Arrow stream"), "stdin")]
    else:
        pieces = open_pieces(str(path), exclude=(labels_path,))
    read = read_pieces(pieces, source, column=column, label_column=label_column, id_column=id_column,
                       want_labels=labels_path is None,
                       readers=FileReaders(npy=load_npy, npz=load_npz, labels=load_labels))
    embeddings = read.embeddings
    validate_embeddings(embeddings, source, require_finite=not allow_nonfinite)

    labels_raw, label_source = read.labels, read.label_source
    searched = list(read.searched)
    if labels_path is not None:
        labels_raw = load_labels(labels_path, column=label_column, stdin_used=from_stdin)
        label_source = labels_path
    elif labels_raw is None and not from_stdin and len(read.shards) > 1 and os.path.isdir(str(path)):
        # A folder's own sidecar: shards/ -> shards.labels.npy beside it.
        for candidate in sidecar_candidates(str(path).rstrip("/" + os.sep)):
            searched.append(candidate)
            if os.path.exists(candidate):
                labels_raw = load_labels(candidate)
                label_source = candidate
                break

    codes = names = None
    if labels_raw is not None:
        if len(labels_raw) != embeddings.shape[0]:
            raise InputError(
                f"{label_source}: labels has {len(labels_raw)} rows but embeddings has "
                f"{embeddings.shape[0]} ({source})"
            )
        codes, names = encode_labels(labels_raw, str(label_source))
    ids = read.ids
    if ids is not None and len(ids) != embeddings.shape[0]:
        raise InputError(f"{source}: id column has {len(ids)} rows but embeddings has {embeddings.shape[0]}")
    return Dataset(
        embeddings=embeddings,
        source=source,
        labels=codes,
        label_names=names,
        label_source=label_source,
        ids=ids,
        labels_searched=tuple(searched),
        shards=read.shards,
    )


def load_allowing_nonfinite(
    path: str | None,
    *,
    column: str | None = None,
    label_column: str | None = None,
    labels_path: str | None = None,
    id_column: str | None = None,
) -> LoadedEmbeddings:
    """Like :func:`load_dataset`, but rows with NaN or Inf are counted, not refused: ``inspect``
    reports them and ``check --require nan_rows==0`` fails on them (exit 1, not 2)."""
    dataset = load_dataset(path, column=column, label_column=label_column, labels_path=labels_path,
                           id_column=id_column, allow_nonfinite=True)
    has_nan, has_inf = nonfinite_masks(dataset.embeddings)
    finite = ~(has_nan | has_inf)
    return LoadedEmbeddings(dataset, int(has_nan.sum()), int((has_inf & ~has_nan).sum()), finite)
