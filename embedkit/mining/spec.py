"""What to mine: the strategies, their definitions, and :class:`MineSpec` (defaults once).

Definitions (d = Euclidean distance ``‖a − b‖₂``, or cosine distance ``1 − cos`` with
``metric="cosine"``; a *positive* of anchor a is another row with a's label, a
*negative* a row with another label):

- ``hard``: each anchor's ``negatives`` nearest negatives.
- ``semi-hard`` (FaceNet): for an anchor a and positive p, the negatives n with
  ``d_ap < d_an <= d_ap + margin`` (``squared=True``: ``d_ap² < d_an² <= d_ap² + margin``);
  by default the closest such negative (``select="closest"``), or all (``select="all"``).
- ``batch-hard`` (Hermans et al. 2017): each anchor's farthest positive and nearest negative.
- ``easy``: the negatives with ``d_an − d_ap > margin`` (squared: ``d_an² − d_ap² > margin``);
  the closest such one per (a, p), or all.
- ``within-margin``: every negative pair ``i < j`` with ``d < margin``: exactly the pairs
  that carry a gradient in the contrastive loss ``max(margin − d, 0)²``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from embedkit.choices import Fallback, PositiveChoice, Select, Strategy
from embedkit.distances import Metric, is_similarity
from embedkit.errors import OptionError
from embedkit.knn import AUTO_EXACT_MAX_ROWS, INDEX_KINDS, IndexKind

STRATEGIES: tuple[Strategy, ...] = ("hard", "semi-hard", "batch-hard", "easy", "within-margin")
POSITIVE_CHOICES: tuple[PositiveChoice, ...] = ("all", "hardest", "nearest", "random")
SELECTS: tuple[Select, ...] = ("closest", "all")
FALLBACKS: tuple[Fallback, ...] = ("none", "hardest", "tf-addons")

DEFINITIONS: dict[str, str] = {
    "hard": "each anchor's K nearest negatives (K = --negatives)",
    "semi-hard": "negatives with d_ap < d_an <= d_ap + margin (FaceNet); the closest one per (a, p), or all",
    "batch-hard": "each anchor's farthest positive and nearest negative (Hermans et al. 2017)",
    "easy": "negatives with d_an - d_ap > margin; the closest one per (a, p), or all",
    "within-margin": "every negative pair i < j with d < margin (the pairs with a gradient in the contrastive loss)",
}
TRIPLET_COLUMNS = ("anchor", "positive", "negative", "d_ap", "d_an")
PAIR_COLUMNS = ("i", "j", "y", "d")
DEFAULT_MAX_ITEMS = 50_000_000
APPROXIMATE = ("hnsw", "ivf")


@dataclass(frozen=True)
class MineSpec:
    """What to mine. ``positives=None`` takes the strategy's default: ``hardest`` for
    batch-hard, none for within-margin, else ``random`` (``positives_count`` per anchor,
    drawn with ``seed``)."""

    strategy: Strategy
    margin: float = 1.0
    negatives: int = 1
    positives: PositiveChoice | None = None
    positives_count: int = 1
    select: Select = "closest"
    fallback: Fallback = "none"
    squared: bool = False
    metric: Metric = "euclidean"
    index: IndexKind = "auto"
    batch_size: int | None = None
    seed: int = 0
    check_recall: int = 0
    nlist: int | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    max_items: int = DEFAULT_MAX_ITEMS
    #: ``index="auto"`` searches exactly up to this many rows, approximately beyond.
    auto_exact_max_rows: int = AUTO_EXACT_MAX_ROWS

    @property
    def triplets(self) -> bool:
        return self.strategy != "within-margin"

    def validated(self) -> MineSpec:
        """This spec with the default positive choice filled in, or an :class:`OptionError`."""
        s = self.strategy
        if s not in STRATEGIES:
            raise OptionError(f"unknown strategy {s!r}; expected one of {', '.join(STRATEGIES)}")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise OptionError(f"--margin must be a finite number >= 0; got {self.margin}")
        if self.metric not in ("euclidean", "cosine"):
            raise OptionError(f"unknown metric {self.metric!r}; expected euclidean or cosine")
        if self.index not in INDEX_KINDS:
            raise OptionError(f"unknown index {self.index!r}; expected one of {', '.join(INDEX_KINDS)}")
        if self.negatives < 1:
            raise OptionError(f"--negatives must be >= 1; got {self.negatives}")
        if self.negatives != 1 and s != "hard":
            raise OptionError(f"--negatives applies to the hard strategy, not {s}")
        positives = self.positives
        if s == "within-margin":
            if positives is not None:
                raise OptionError("--positives does not apply to within-margin (it mines negative pairs)")
        elif s == "batch-hard":
            if positives not in (None, "hardest"):
                raise OptionError(f"batch-hard uses each anchor's farthest positive; --positives {positives} contradicts it")
            positives = "hardest"
        elif positives is None:
            positives = "random"
        if positives is not None and positives not in POSITIVE_CHOICES:
            raise OptionError(f"unknown positive choice {positives!r}; expected one of {', '.join(POSITIVE_CHOICES)}")
        if self.positives_count < 1:
            raise OptionError(f"--positives-count must be >= 1; got {self.positives_count}")
        if self.positives_count != 1 and positives != "random":
            raise OptionError("--positives-count applies to --positives random")
        if self.select not in SELECTS:
            raise OptionError(f"unknown selection {self.select!r}; expected closest or all")
        if self.select != "closest" and s not in ("semi-hard", "easy"):
            raise OptionError(f"--select applies to semi-hard and easy, not {s}")
        if self.fallback not in FALLBACKS:
            raise OptionError(f"unknown fallback {self.fallback!r}; expected one of {', '.join(FALLBACKS)}")
        if self.fallback != "none" and (s != "semi-hard" or self.select != "closest"):
            raise OptionError("--fallback applies to semi-hard with --select closest")
        if self.squared and (s not in ("semi-hard", "easy") or is_similarity(self.metric)):
            raise OptionError("--squared applies to the Euclidean bands of semi-hard and easy")
        if self.index in APPROXIMATE and s not in ("hard", "batch-hard"):
            raise OptionError(
                f"--index {self.index} supports hard and batch-hard; {s} needs a per-anchor threshold "
                "that a k-NN list cannot apply: use --index exact, or --batch-size B on large inputs"
            )
        if self.index in APPROXIMATE and self.batch_size is not None:
            raise OptionError("--batch-size mines each batch exactly; it does not combine with --index "
                              f"{self.index}")
        if self.batch_size is not None and self.batch_size < 2:
            raise OptionError(f"--batch-size must be >= 2; got {self.batch_size}")
        if self.check_recall < 0:
            raise OptionError(f"--check-recall must be >= 0; got {self.check_recall}")
        if self.check_recall and s not in ("hard", "batch-hard"):
            raise OptionError(f"--check-recall measures nearest-negative recall (hard, batch-hard), not {s}")
        if self.seed < 0:
            raise OptionError(f"--seed must be >= 0; got {self.seed}")
        if self.max_items < 1:
            raise OptionError(f"--max-items must be >= 1; got {self.max_items}")
        for name, value in (("nlist", self.nlist), ("nprobe", self.nprobe), ("ef-search", self.ef_search)):
            if value is not None and value < 1:
                raise OptionError(f"--{name} must be >= 1; got {value}")
        return replace(self, positives=positives)


def strategy_definition(spec: MineSpec) -> str:
    """The strategy's definition as reported, with the squared or TF-Addons variant spelled out."""
    text = DEFINITIONS[spec.strategy]
    if spec.squared:
        text = text.replace("d_ap < d_an <= d_ap + margin", "d_ap² < d_an² <= d_ap² + margin").replace(
            "d_an - d_ap > margin", "d_an² - d_ap² > margin")
    if spec.fallback == "tf-addons":
        text = ("TF-Addons triplet_semihard_loss: the closest negative with d_an > d_ap (no upper bound); "
                "if none, the farthest negative")
    return text


def reported_params(spec: MineSpec) -> dict[str, object]:
    """The parameters that shaped the result (only those the strategy reads)."""
    params: dict[str, object] = {"metric": spec.metric}
    if spec.strategy in ("semi-hard", "easy", "within-margin"):
        params["margin"] = spec.margin
    if spec.strategy == "hard":
        params["negatives"] = spec.negatives
    if spec.positives is not None:
        params["positives"] = spec.positives
        if spec.positives == "random":
            params["positives_count"] = spec.positives_count
            params["seed"] = spec.seed
    if spec.strategy in ("semi-hard", "easy"):
        params["select"] = spec.select
        params["squared"] = spec.squared
    if spec.strategy == "semi-hard":
        params["fallback"] = spec.fallback
    if spec.batch_size is not None:
        params["batch_size"] = spec.batch_size
        params["seed"] = spec.seed
    return params
