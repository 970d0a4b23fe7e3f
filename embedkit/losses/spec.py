"""``LossSpec``: which loss, its hyper-parameters and its reduction; defaults live here once.

Each kind's formula, distance, convention and the hyper-parameters it reads come from its
own module's ``definition``; options a kind does not read are refused, not ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from embedkit.choices import LossKind
from embedkit.errors import OptionError
from embedkit.losses import bce, contrastive, infonce, npair, supcon, triplet
from embedkit.losses.contrastive import CONTRASTIVE_FORMS, ContrastiveForm
from embedkit.losses.definition import LossDefinition, SpecFields
from embedkit.losses.result import REDUCTIONS, Reduction

LOSS_KINDS: tuple[LossKind, ...] = ("contrastive", "triplet", "npair", "infonce", "supcon", "bce")
DEFAULT_TEMPERATURES = {"infonce": 0.07, "supcon": 0.1}

DEFINITIONS: dict[str, Callable[[SpecFields], LossDefinition]] = {
    "contrastive": contrastive.definition, "triplet": triplet.definition, "npair": npair.definition,
    "infonce": infonce.definition, "supcon": supcon.definition, "bce": bce.definition,
}
#: The hyper-parameters, in the order options are reported; a spec field's CLI option is
#: ``--name`` with dashes, except where named here.
HYPER_PARAMETERS = ("margin", "form", "squared", "temperature", "scale", "bias", "l2_reg")
_OPTION_NAMES = {"squared": "--no-squared"}


def option_name(field_name: str) -> str:
    """The command-line option that sets a spec field (``l2_reg`` → ``--l2-reg``)."""
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


@dataclass(frozen=True)
class LossSpec:
    """Which loss, and its hyper-parameters. ``temperature=None`` takes the kind's default
    (InfoNCE 0.07 as pytorch-metric-learning's NTXentLoss; SupCon 0.1).

    >>> LossSpec("infonce", margin=0.5).inapplicable()
    ['--margin']
    >>> LossSpec("triplet").definition().params
    ('margin', 'squared')
    """

    kind: LossKind
    margin: float = 1.0
    form: ContrastiveForm = "squared"
    squared: bool = True
    temperature: float | None = None
    scale: float = 10.0
    bias: float = -10.0
    l2_reg: float = 0.0
    normalize: bool = False
    reduction: Reduction = "mean"
    margins: tuple[float, ...] = ()

    def definition(self) -> LossDefinition:
        """The kind's formula, distance, convention and the hyper-parameters it reads."""
        if self.kind not in DEFINITIONS:
            raise OptionError(f"unknown loss kind {self.kind!r}; expected one of {', '.join(LOSS_KINDS)}")
        return DEFINITIONS[self.kind](self)

    def inapplicable(self) -> list[str]:
        """Options set away from their defaults that this kind does not read (for the CLI,
        which refuses them rather than ignore them)."""
        used = set(self.definition().params)
        defaults = {f.name: f.default for f in fields(LossSpec)}
        return [option_name(name) for name in HYPER_PARAMETERS
                if name not in used and getattr(self, name) != defaults[name]]

    def validated(self) -> LossSpec:
        """This spec with defaults filled in, or an :class:`OptionError`."""
        if self.kind not in LOSS_KINDS:
            raise OptionError(f"unknown loss kind {self.kind!r}; expected one of {', '.join(LOSS_KINDS)}")
        if self.reduction not in REDUCTIONS:
            raise OptionError(f"unknown reduction {self.reduction!r}; expected one of {', '.join(REDUCTIONS)}")
        if self.form not in CONTRASTIVE_FORMS:
            raise OptionError(f"unknown contrastive form {self.form!r}; expected one of {', '.join(CONTRASTIVE_FORMS)}")
        for name, value in (("margin", self.margin), *((f"margins ({m})", m) for m in self.margins)):
            if not math.isfinite(value) or value < 0:
                raise OptionError(f"--{name.split(' ')[0]} must be a finite number >= 0; got {value}")
        if self.margins and "margin" not in self.definition().params:
            raise OptionError(f"--margins applies to contrastive and triplet losses, not {self.kind}")
        temperature = self.temperature if self.temperature is not None else DEFAULT_TEMPERATURES.get(self.kind)
        if temperature is not None and (not math.isfinite(temperature) or temperature <= 0):
            raise OptionError(f"--temperature must be > 0; got {temperature}")
        for name, value in (("scale", self.scale), ("bias", self.bias)):
            if not math.isfinite(value):
                raise OptionError(f"--{name} must be finite; got {value}")
        if not math.isfinite(self.l2_reg) or self.l2_reg < 0:
            raise OptionError(f"--l2-reg must be >= 0; got {self.l2_reg}")
        return replace(self, temperature=temperature)
