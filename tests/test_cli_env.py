"""`embedkit env`: what a bug report needs."""

from __future__ import annotations

import json
import os

import numpy

import embedkit


def test_env_json(run_cli) -> None:
    result = run_cli("env", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["versions"]["embedkit"] == embedkit.__version__
    assert info["versions"]["numpy"] == numpy.__version__
    assert {"faiss-cpu", "pyarrow", "numba", "typer", "rich", "threadpoolctl"} <= set(info["versions"])
    assert info["cores"]["usable"] == len(os.sched_getaffinity(0))
    assert any(pool["api"] == "blas" and pool["threads"] >= 1 for pool in info["thread_pools"]), info["thread_pools"]
    assert info["python"]["version"].count(".") == 2


def test_env_human(run_cli) -> None:
    result = run_cli("env")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"embedkit  {embedkit.__version__}\n")
    for name in ("python", "cores", "numpy", "faiss-cpu", "pyarrow", "numba", "threads"):
        assert name in text, text
