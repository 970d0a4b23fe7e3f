"""The named choices and defaults shared by the library and the command line.

Plain ``typing.Literal`` aliases and numbers, no numpy: the CLI builds its options from
them without importing the modules that do the work (faiss, numba, pyarrow), so
``embedkit --help`` starts fast. Each module that implements a choice re-exports it.
"""

from __future__ import annotations

from typing import Literal

Metric = Literal["euclidean", "cosine"]
#: How ``eval --qrels`` ranks documents (dot: inner product).
RankingMetric = Literal["euclidean", "cosine", "dot"]
#: The headline retrieval metrics of ``eval``, in display order.
METRIC_NAMES: tuple[str, ...] = ("precision_at_1", "r_precision", "map_at_r")

LossKind = Literal["contrastive", "triplet", "npair", "infonce", "supcon", "bce"]
Reduction = Literal["mean", "sum", "mean-nonzero", "none"]
ContrastiveForm = Literal["squared", "halved", "linear"]

Strategy = Literal["hard", "semi-hard", "batch-hard", "easy", "within-margin"]
PositiveChoice = Literal["all", "hardest", "nearest", "random"]
Select = Literal["closest", "all"]
Fallback = Literal["none", "hardest", "tf-addons"]
IndexKind = Literal["exact", "hnsw", "ivf", "auto"]

#: Retrieval mining (``mine CORPUS --queries Q --qrels R``): sampling and output formats.
Sampling = Literal["top", "random"]
OutputFormat = Literal["triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding"]

#: ``inspect`` / ``check``: pairs measured exactly before sampling, sample size, seed, bins.
DEFAULT_EXACT_PAIRS = 2_000_000
DEFAULT_SAMPLE = 200_000
DEFAULT_SEED = 0
DEFAULT_BINS = 24
#: Cut-offs of label eval (recall_at_k) and of eval with qrels (ndcg_at_k, recall_at_k, ...).
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_IR_KS: tuple[int, ...] = (10, 100)
#: Negatives per query of retrieval mining (sentence-transformers' num_negatives default is 3).
DEFAULT_RETRIEVAL_NEGATIVES = 3
#: Working memory of one block of pairwise work, per worker (MiB).
DEFAULT_BUDGET_MIB = 64.0
#: Working memory of one block of a streaming scan over the rows (norms, duplicates, NaN rows).
SCAN_BUDGET_MIB = 32.0
