"""Start-up: `--version`, `--help` and a light `check` do not import the heavy modules."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE

CASES = {
    "version": (["--version"], ("numba", "faiss", "pyarrow", "numpy", "matplotlib", "dask")),
    "help": (["--help"], ("numba", "faiss", "pyarrow", "numpy", "matplotlib", "dask")),
    "mine-help": (["mine", "--help"], ("numba", "faiss", "pyarrow", "numpy", "matplotlib", "dask")),
    "light-check": (["check", str(SAMPLE / "emb.npy"), "--require", "nan_rows==0"],
                    ("numba", "faiss", "pyarrow", "matplotlib", "dask")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_heavy_modules_are_imported_only_where_used(name: str) -> None:
    args, forbidden = CASES[name]
    code = ("import sys\nfrom embedkit.cli.main import run\ncode = run(sys.argv[1:])\nsys.stdout.flush()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{forbidden!r}), file=sys.stderr)\nsys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
