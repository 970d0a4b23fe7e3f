"""What a loss figure means: its formula, distance, label convention and hyper-parameters.

Each loss module exports ``definition(spec)`` next to its arithmetic; the spec, the CLI's
refusal of options that do not apply and every rendered result read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: The label convention of every pair loss (seed 002, TF-Addons; Chopra et al. use the opposite).
CONVENTION_PAIRS = "y=1 similar pair (same label), y=0 dissimilar"


class SpecFields(Protocol):
    """The spec fields a definition may depend on (a :class:`~embedkit.losses.spec.LossSpec`)."""

    form: str
    squared: bool


@dataclass(frozen=True)
class LossDefinition:
    """``formula`` in one line, the ``distance`` or similarity it uses, the item/label
    ``convention``, and ``params``: the spec fields (hyper-parameters) the loss reads."""

    formula: str
    distance: str
    convention: str
    params: tuple[str, ...]
