"""Contrastive loss over labelled pairs (Chopra et al. 2005; Hadsell et al. 2006).

Label convention: ``y = 1`` for a similar pair, ``y = 0`` for a dissimilar one. ``D`` is
the Euclidean distance ``‖f(x₁) − f(x₂)‖₂`` (not squared). Forms:

- ``squared`` (default; TF-Addons ``contrastive_loss``, the seed's worked example):
  ``y·D² + (1−y)·max(m − D, 0)²``
- ``halved`` (Hadsell et al. 2006): ``½·y·D² + ½·(1−y)·max(m − D, 0)²``
- ``linear`` (an unsquared hinge, as in seed 001's eq. 4): ``½·y·D² + (1−y)·max(m − D, 0)``
"""

from __future__ import annotations

import numpy as np

from embedkit.choices import ContrastiveForm
from embedkit.errors import OptionError
from embedkit.losses.definition import CONVENTION_PAIRS, LossDefinition, SpecFields

CONTRASTIVE_FORMS: tuple[ContrastiveForm, ...] = ("squared", "halved", "linear")
CONTRASTIVE_FORMULAS: dict[str, str] = {
    "squared": "y·D² + (1−y)·max(m − D, 0)²",
    "halved": "½·y·D² + ½·(1−y)·max(m − D, 0)²",
    "linear": "½·y·D² + (1−y)·max(m − D, 0)",
}


def contrastive_loss(
    distances: np.ndarray,
    similar: np.ndarray,
    *,
    margin: float = 1.0,
    form: ContrastiveForm = "squared",
) -> np.ndarray:
    """Per-pair contrastive loss, float64.

    Parameters
    ----------
    distances : (P,) Euclidean distances D (unsquared).
    similar : (P,) 1/True for a similar pair, 0/False for a dissimilar one.
    margin : m, the distance dissimilar pairs are pushed beyond (default 1.0).
    form : ``squared`` (default), ``halved`` or ``linear`` (see the module docstring).

    >>> contrastive_loss(np.array([0.5, 0.5]), np.array([1, 0]), margin=1.0)
    array([0.25, 0.25])
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(similar).astype(bool)
    hinge = np.maximum(margin - d, 0.0)
    if form == "squared":
        return np.where(y, d * d, hinge * hinge)
    if form == "halved":
        return np.where(y, 0.5 * d * d, 0.5 * hinge * hinge)
    if form == "linear":
        return np.where(y, 0.5 * d * d, hinge)
    raise OptionError(f"unknown contrastive form {form!r}; expected one of {', '.join(CONTRASTIVE_FORMS)}")


def definition(spec: SpecFields) -> LossDefinition:
    """The contrastive loss of ``spec.form``, on unsquared Euclidean distances."""
    return LossDefinition(CONTRASTIVE_FORMULAS[spec.form], "Euclidean D = ‖a − b‖₂ (unsquared)",
                          CONVENTION_PAIRS, ("margin", "form"))
