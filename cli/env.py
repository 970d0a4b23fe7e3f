"""``embedkit env``: versions, cores and thread pools, for bug reports."""

from __future__ import annotations

from . import options as opt

EPILOG = "Examples:\n  embedkit env\n  embedkit env --json"


def env(json: opt.JsonOpt = False) -> None:
    """Print versions (embedkit, Python, numpy, faiss, pyarrow, numba, ...), cores and BLAS threads."""
    from embedkit.environment import describe_environment

    from .render import env as render

    render.environment(describe_environment(), as_json=json)
