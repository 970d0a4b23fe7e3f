"""Per-item losses, their reductions, and the streaming accumulator every loss path shares.

Per-item losses are kept apart from the reduction (as pytorch-metric-learning's
reducers are): ``mean`` = total / items, ``sum`` = total, ``mean-nonzero`` = total /
items with loss > 0 (0 when there are none), ``none`` = the per-item losses
themselves. Totals are accumulated in float64, block by block, in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedkit.choices import Reduction
from embedkit.errors import OptionError

REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "mean-nonzero", "none")


def reduce_total(total: float, count: int, active: int, reduction: Reduction) -> float | None:
    """The reduced loss from its float64 ``total``, item ``count`` and ``active`` count.

    >>> reduce_total(3.0, 4, 2, "mean"), reduce_total(3.0, 4, 2, "mean-nonzero")
    (0.75, 1.5)
    """
    if reduction == "sum":
        return float(total)
    if reduction == "mean":
        return float(total) / count if count else 0.0
    if reduction == "mean-nonzero":
        return float(total) / active if active else 0.0
    if reduction == "none":
        return None
    raise OptionError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def reduce_losses(losses: np.ndarray, reduction: Reduction) -> float | np.ndarray:
    """Apply ``reduction`` to an array of per-item losses (``none`` returns it unchanged)."""
    if reduction == "none":
        return losses
    total = float(np.sum(losses, dtype=np.float64))
    value = reduce_total(total, int(losses.size), int(np.count_nonzero(losses > 0)), reduction)
    assert value is not None
    return value


@dataclass(frozen=True)
class SweepPoint:
    """The loss at one margin of a sweep (same reduction as the main result)."""

    margin: float
    loss: float | None
    total: float
    active: int


@dataclass(frozen=True)
class Aggregate:
    """What a pass over all items produced, before the reduction is applied.

    ``head`` holds the first items in the canonical order, ``top`` the largest losses
    (ties broken by that order); both are column tables with a ``loss`` column.
    ``sweep_totals``/``sweep_active`` follow the sweep's ``margins``.
    """

    total: float
    count: int
    active: int
    head: dict[str, np.ndarray]
    top: dict[str, np.ndarray]
    items: dict[str, np.ndarray] | None = None
    margins: tuple[float, ...] = ()
    sweep_totals: tuple[float, ...] = ()
    sweep_active: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class ItemAccumulator:
    """Streams blocks of items (column tables with a ``loss`` column) into an :class:`Aggregate`.

    Keeps float64 totals, active counts, the first ``head`` items, the ``top`` largest
    losses (ties: earlier item first) and, if ``keep_items``, every item.
    """

    def __init__(self, *, head: int, top: int, keep_items: bool, margins: tuple[float, ...] = ()) -> None:
        self.head_size = head
        self.top_size = top
        self.keep_items = keep_items
        self.margins = margins
        self.total = 0.0
        self.count = 0
        self.active = 0
        self.sweep_totals = [0.0] * len(margins)
        self.sweep_active = [0] * len(margins)
        self._head: list[dict[str, np.ndarray]] = []
        self._head_rows = 0
        self._top: dict[str, np.ndarray] | None = None
        self._items: list[dict[str, np.ndarray]] = []

    def add(self, block: dict[str, np.ndarray], sweep_losses: list[np.ndarray] | None = None) -> None:
        """Add a block of items; ``sweep_losses[k]`` are its losses at ``margins[k]``."""
        losses = block["loss"]
        size = int(losses.size)
        if size == 0:
            return
        self.total += float(np.sum(losses, dtype=np.float64))
        self.active += int(np.count_nonzero(losses > 0))
        for k, values in enumerate(sweep_losses or []):
            self.sweep_totals[k] += float(np.sum(values, dtype=np.float64))
            self.sweep_active[k] += int(np.count_nonzero(values > 0))
        if self._head_rows < self.head_size:
            take = min(size, self.head_size - self._head_rows)
            self._head.append({k: v[:take] for k, v in block.items()})
            self._head_rows += take
        if self.top_size:
            self._merge_top(block, size)
        if self.keep_items:
            self._items.append(block)
        self.count += size

    def _merge_top(self, block: dict[str, np.ndarray], size: int) -> None:
        losses = block["loss"]
        positive = np.flatnonzero(losses > 0)  # zero-loss items contribute nothing
        if len(positive) > self.top_size:
            part = np.argpartition(-losses[positive], self.top_size - 1)[: self.top_size]
            # argpartition may drop ties arbitrarily: keep every item tied with the cut.
            cut = losses[positive[part]].min()
            pick = positive[losses[positive] >= cut]
        else:
            pick = positive
        candidate = {k: v[pick] for k, v in block.items()}
        candidate["_order"] = pick.astype(np.int64) + self.count
        merged = candidate if self._top is None else {
            k: np.concatenate([self._top[k], candidate[k]]) for k in candidate
        }
        order = np.lexsort((merged["_order"], -merged["loss"]))[: self.top_size]
        self._top = {k: v[order] for k, v in merged.items()}

    def finish(self, **extra: Any) -> Aggregate:
        def stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
            if not parts:
                return {}
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

        top = {k: v for k, v in (self._top or {}).items() if k != "_order"}
        return Aggregate(
            total=self.total,
            count=self.count,
            active=self.active,
            head=stack(self._head),
            top=top,
            items=stack(self._items) if self.keep_items else None,
            margins=self.margins,
            sweep_totals=tuple(self.sweep_totals),
            sweep_active=tuple(self.sweep_active),
            extra=dict(extra),
        )


@dataclass(frozen=True)
class LossResult:
    """A computed loss: the reduced value, its provenance, and the items behind it."""

    kind: str
    formula: str
    distance: str
    convention: str
    reduction: Reduction
    loss: float | None
    total: float
    mean: float
    count: int
    active: int
    columns: tuple[str, ...]
    head: dict[str, np.ndarray]
    top: dict[str, np.ndarray]
    items: dict[str, np.ndarray] | None
    params: dict[str, Any]
    source: str
    sweep: tuple[SweepPoint, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def max_item(self) -> dict[str, Any] | None:
        """The single item contributing most (first in canonical order among ties)."""
        if not self.top or len(self.top["loss"]) == 0:
            return None
        return {k: v[0].item() for k, v in self.top.items()}


def finish_result(
    aggregate: Aggregate, *, reduction: Reduction, details: dict[str, Any] | None = None, **meta: Any
) -> LossResult:
    """Apply ``reduction`` to an :class:`Aggregate` and attach the loss's description."""
    loss = reduce_total(aggregate.total, aggregate.count, aggregate.active, reduction)
    sweep = tuple(
        SweepPoint(
            margin=m,
            loss=reduce_total(t, aggregate.count, a, reduction),
            total=t,
            active=a,
        )
        for m, t, a in zip(aggregate.margins, aggregate.sweep_totals, aggregate.sweep_active)
    )
    mean = aggregate.total / aggregate.count if aggregate.count else 0.0
    return LossResult(
        loss=loss,
        total=aggregate.total,
        mean=mean,
        count=aggregate.count,
        active=aggregate.active,
        head=aggregate.head,
        top=aggregate.top,
        items=aggregate.items,
        reduction=reduction,
        sweep=sweep,
        details={**aggregate.extra, **(details or {})},
        **meta,
    )
