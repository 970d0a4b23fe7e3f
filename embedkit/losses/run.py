"""One loss computation in progress: the data, the spec, the execution settings, and the
steps every item source shares (accumulating, the listing cap, attaching the definition)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.dataset import Dataset
from embedkit.errors import OptionError
from embedkit.execution import Execution
from embedkit.losses.result import Aggregate, ItemAccumulator, LossResult, finish_result
from embedkit.losses.spec import LossSpec

#: Label pairs up to this count are enumerated exactly; beyond, the tiled kernel scans them.
ENUMERATE_PAIRS_BELOW = 200_000
#: Label triplets up to this count are enumerated; beyond, sorted prefix sums total them.
ENUMERATE_TRIPLETS_BELOW = 200_000
#: Per-item output (``--reduction none`` or ``-o``), at most this many items.
MAX_OUTPUT_ITEMS = 20_000_000


@dataclass(frozen=True)
class LossRun:
    """``x`` is the embedding matrix the loss reads (L2-normalised with ``spec.normalize``)."""

    dataset: Dataset
    x: np.ndarray
    spec: LossSpec
    trace: int = 5
    top: int = 5
    keep: bool = False
    execution: Execution = Execution()
    enumerate_pairs_below: int = ENUMERATE_PAIRS_BELOW
    enumerate_triplets_below: int = ENUMERATE_TRIPLETS_BELOW
    max_output_items: int = MAX_OUTPUT_ITEMS

    def labels(self, purpose: str) -> np.ndarray:
        return self.dataset.require_labels(purpose)

    def accumulator(self) -> ItemAccumulator:
        return ItemAccumulator(head=self.trace, top=self.top, keep_items=self.keep, margins=self.spec.margins)

    def check_item_count(self, count: int, what: str) -> None:
        """Listing every item is refused beyond ``max_output_items``, with a pointer to mining."""
        if self.keep and count > self.max_output_items:
            mining = ("`embedkit mine --strategy semi-hard -o t.csv` and pass --triplets t.csv"
                      if self.spec.kind == "triplet" else
                      "`embedkit mine --strategy within-margin -o p.csv` and pass --pairs p.csv")
            raise OptionError(
                f"{what}: {count:,} items are too many to list (limit {self.max_output_items:,}); "
                f"use --reduction mean/sum without -o, or mine the informative ones with {mining}"
            )

    def finish(self, aggregate: Aggregate, columns: tuple[str, ...], source: str, **details: object) -> LossResult:
        """The reduced result, described by the loss's own definition."""
        spec = self.spec
        definition = spec.definition()
        params: dict[str, object] = {"normalize": spec.normalize}
        params.update((name, getattr(spec, name)) for name in definition.params)
        return finish_result(
            aggregate, reduction=spec.reduction, kind=spec.kind, formula=definition.formula,
            distance=definition.distance, convention=definition.convention, columns=columns,
            params=params, source=source, details=details,
        )
