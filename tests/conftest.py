"""Shared fixtures: dtypes, small data sets, and a CLI runner that separates stdout and stderr."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embedkit.dataset import Dataset

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
SEED = SAMPLE / "seed"

# The seed document's four faces: A1, A2 (Alice) and B1, B2 (Bob).
SEED_FACES = np.array([[0.8, 0.2], [0.75, 0.25], [0.1, 0.9], [0.15, 0.85]])
SEED_LABELS = np.array([0, 0, 1, 1])
SEED_PAIRS = {"i": np.array([0, 0, 1, 2]), "j": np.array([1, 2, 3, 3]), "y": np.array([1, 0, 0, 1])}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> type:
    return request.param


def clustered(rows: int, dim: int, classes: int, *, seed: int = 0, spread: float = 0.5,
              dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters: ``(embeddings, labels)`` with every class non-empty when rows >= classes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim))
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, max(0, rows - classes))])[:rows]
    rng.shuffle(labels)
    x = centres[labels] + spread * rng.standard_normal((rows, dim))
    return x.astype(dtype), labels.astype(np.int64)


def dataset(x: np.ndarray, labels: np.ndarray | None = None) -> Dataset:
    return Dataset(embeddings=x, source="test", labels=labels)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch):
    """Run the app in-process through Typer's CliRunner; stdout and stderr kept apart."""
    from embedkit.cli.main import app
    from typer.testing import CliRunner

    def run(*args: str, input: bytes | str | None = None, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        runner = CliRunner()
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False,
                               env={"COLUMNS": "120", "NO_COLOR": "1", **{k: v for k, v in os.environ.items() if k == "PATH"}})
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
