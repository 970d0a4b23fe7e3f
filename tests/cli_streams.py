"""Run the app in-process with stdout/stderr on a given binary file (a pipe, a device, a
buffer in a chosen encoding): the same path as the console script, without a new Python."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def streams(out: BinaryIO, err: BinaryIO, encoding: str = "utf-8") -> Iterator[None]:
    old = sys.stdout, sys.stderr
    sys.stdout = io.TextIOWrapper(out, encoding=encoding, write_through=False)
    sys.stderr = io.TextIOWrapper(err, encoding=encoding, write_through=True)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
            with contextlib.suppress(Exception):
                stream.detach()
        sys.stdout, sys.stderr = old


def run_app(args: list[str], out: BinaryIO, err: BinaryIO, encoding: str = "utf-8") -> int:
    """``embedkit.cli.main.run`` (parse, run, flush stdout) with the given streams; the exit code."""
    from embedkit.cli.main import run

    with streams(out, err, encoding):
        return run([str(a) for a in args])
