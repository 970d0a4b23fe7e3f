"""Turning command-line input arguments into library calls: stdin rules and early checks."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from embedkit.dataset import Dataset
from embedkit.errors import InputError, OptionError
from embedkit.formats import STDIN
from embedkit.io import load_dataset
from embedkit.output import (
    check_output_path,
    guarded_inputs,
    refuse_output_in_shard_sets,
    table_format,
)


def resolve_embeddings(path: str | None) -> str:
    """The embeddings path, ``-`` for stdin; no path and a terminal on stdin is an error."""
    if path is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no embeddings given: pass a file (.npy, .npz, .parquet) or pipe one on stdin")
        return STDIN
    return path


def load_inputs(
    embeddings: str | None,
    *,
    labels: str | None = None,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    tables: Sequence[str | None] = (),
    output: str | None = None,
) -> Dataset:
    """Check stdin use and the output path up front, then load the dataset."""
    path = resolve_embeddings(embeddings)
    named = {"embeddings": path, "--labels": labels, **{f"table {k + 1}": t for k, t in enumerate(tables)}}
    from_stdin = [name for name, value in named.items() if value == STDIN]
    if len(from_stdin) > 1:
        raise OptionError(f"only one input can be read from stdin ('-'); got {' and '.join(from_stdin)}")
    if output is not None:
        check_output_path(output, guarded_inputs([path], list(named.values())))
        refuse_output_in_shard_sets(output, [path])
        table_format(output)
    return load_dataset(path, column=column, label_column=label_column, labels_path=labels, id_column=id_column)


def parse_floats(text: str | None, option: str) -> tuple[float, ...]:
    """``"0.5,1.0"`` -> ``(0.5, 1.0)``; ``None`` -> ``()``."""
    if text is None:
        return ()
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise OptionError(f"{option}: {part!r} is not a number (expected e.g. 0.5,1.0,2.0)") from None
    if not values:
        raise OptionError(f"{option}: no values given (expected e.g. 0.5,1.0,2.0)")
    return tuple(values)


def parse_ints(text: str | None, option: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> ``(1, 5, 10)``; values must be >= 1."""
    if text is None:
        return ()
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        # isdigit() alone accepts '²' and other digits int() refuses.
        if not (part.isascii() and part.isdigit()) or int(part) < 1:
            raise OptionError(f"{option}: {part!r} is not a whole number >= 1 (expected e.g. 1,5,10)")
        values.append(int(part))
    if not values:
        raise OptionError(f"{option}: no values given (expected e.g. 1,5,10)")
    return tuple(values)
