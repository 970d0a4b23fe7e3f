"""embedkit: contrastive-learning losses, hard-negative mining and retrieval checks on exported embeddings.

The public API. Names are imported on first use (PEP 562), so ``import embedkit`` stays
light and the command line starts fast; ``from embedkit import compute_loss`` works as usual.

>>> import numpy as np, embedkit
>>> data = embedkit.Dataset(np.eye(4), "example", labels=np.array([0, 0, 1, 1]))
>>> embedkit.compute_loss(data, embedkit.LossSpec("contrastive", margin=1.0)).count
6
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "EmbedkitError": "embedkit.errors",
    "InputError": "embedkit.errors",
    "OptionError": "embedkit.errors",
    # loading
    "Dataset": "embedkit.dataset",
    "LoadedEmbeddings": "embedkit.dataset",
    "load_dataset": "embedkit.io",
    "load_allowing_nonfinite": "embedkit.io",
    "load_labels": "embedkit.labelfile",
    "Shard": "embedkit.shard_paths",
    # losses
    "LossSpec": "embedkit.losses.spec",
    "compute_loss": "embedkit.losses.compute",
    "LossResult": "embedkit.losses.result",
    # mining
    "MineSpec": "embedkit.mining.spec",
    "MineResult": "embedkit.mining.result",
    "mine": "embedkit.mining.strategies",
    "mine_dataset": "embedkit.mining.strategies",
    # search and evaluation
    "exact_knn": "embedkit.knn",
    "RetrievalMetrics": "embedkit.metrics",
    "evaluate_retrieval": "embedkit.metrics",
    "retrieval_metrics": "embedkit.metrics",
    # retrieval with relevance judgements (qrels)
    "Qrels": "embedkit.qrels",
    "JudgedRows": "embedkit.qrels",
    "read_qrels": "embedkit.qrels",
    "resolve_qrels": "embedkit.qrels",
    "top_k": "embedkit.ranking",
    "IRResult": "embedkit.ireval",
    "evaluate_qrels": "embedkit.ireval",
    "evaluate_run": "embedkit.ireval",
    "read_run": "embedkit.ireval",
    "write_run": "embedkit.ireval",
    "IRJob": "embedkit.ireval_job",
    "run_ir_eval": "embedkit.ireval_job",
    # inspection and checks
    "Inspection": "embedkit.inspection",
    "inspect_embeddings": "embedkit.inspection",
    "CheckReport": "embedkit.checks",
    "CheckSettings": "embedkit.checks",
    "run_check": "embedkit.checks",
    "parse_requirements": "embedkit.checks",
    "parse_max_drops": "embedkit.checks",
    # execution: engine, memory budget, progress
    "Execution": "embedkit.execution",
    "make_engine": "embedkit.engines",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embedkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # ruff: noqa: F401 - re-exported through __all__
    from embedkit.checks import (
        CheckReport,
        CheckSettings,
        parse_max_drops,
        parse_requirements,
        run_check,
    )
    from embedkit.dataset import Dataset, LoadedEmbeddings
    from embedkit.engines import make_engine
    from embedkit.errors import EmbedkitError, InputError, OptionError
    from embedkit.inspection import Inspection, inspect_embeddings
    from embedkit.io import load_allowing_nonfinite, load_dataset
    from embedkit.ireval import IRResult, evaluate_qrels, evaluate_run, read_run, write_run
    from embedkit.ireval_job import IRJob, run_ir_eval
    from embedkit.knn import exact_knn
    from embedkit.labelfile import load_labels
    from embedkit.losses.compute import compute_loss
    from embedkit.losses.result import LossResult
    from embedkit.losses.spec import LossSpec
    from embedkit.metrics import RetrievalMetrics, evaluate_retrieval, retrieval_metrics
    from embedkit.mining.result import MineResult
    from embedkit.mining.spec import MineSpec
    from embedkit.mining.strategies import mine, mine_dataset
    from embedkit.qrels import JudgedRows, Qrels, read_qrels, resolve_qrels
    from embedkit.ranking import top_k
    from embedkit.shard_paths import Shard
