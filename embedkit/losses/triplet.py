"""Triplet margin loss (Schroff et al. 2015, FaceNet; torch.nn.TripletMarginLoss).

For an anchor a, a positive p (same label) and a negative n (other label):

- ``squared=True`` (default, FaceNet): ``max(‖a−p‖² − ‖a−n‖² + α, 0)``
- ``squared=False`` (torch.nn.TripletMarginLoss, p=2): ``max(‖a−p‖ − ‖a−n‖ + α, 0)``

torch adds ``eps=1e-6`` inside its distance (``‖a − p + eps‖``); embedkit does not, so
the two agree to about 1e-6 per triplet.
"""

from __future__ import annotations

import numpy as np

from embedkit.losses.definition import LossDefinition, SpecFields

TRIPLET_FORMULAS = {
    True: "max(‖a−p‖² − ‖a−n‖² + α, 0)",
    False: "max(‖a−p‖ − ‖a−n‖ + α, 0)",
}


def triplet_margin_loss(
    d_ap: np.ndarray, d_an: np.ndarray, *, margin: float = 1.0, squared: bool = True
) -> np.ndarray:
    """Per-triplet loss from unsquared Euclidean distances ``d_ap`` and ``d_an``, float64.

    >>> triplet_margin_loss(np.array([1.0]), np.array([2.0]), margin=1.0, squared=False)
    array([0.])
    >>> triplet_margin_loss(np.array([1.0]), np.array([1.5]), margin=1.0, squared=False)
    array([0.5])
    >>> triplet_margin_loss(np.array([1.0]), np.array([1.5]), margin=2.0, squared=True)
    array([0.75])
    """
    ap = np.asarray(d_ap, dtype=np.float64)
    an = np.asarray(d_an, dtype=np.float64)
    if squared:
        ap, an = ap * ap, an * an
    return np.maximum(ap - an + margin, 0.0)


def definition(spec: SpecFields) -> LossDefinition:
    """The triplet margin loss, on squared (FaceNet) or unsquared (torch.nn) distances."""
    distance = "Euclidean, squared (FaceNet)" if spec.squared else "Euclidean, unsquared (torch.nn)"
    return LossDefinition(TRIPLET_FORMULAS[spec.squared], distance,
                          "positive: same label as the anchor; negative: another label", ("margin", "squared"))
