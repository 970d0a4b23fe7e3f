"""Binary cross-entropy (logistic) loss on pair similarities, SigLIP-style.

Per pair with cosine similarity ``s`` and label ``y`` (1 = similar):
``z = scale·s + bias``, ``p = σ(z)``, loss ``−y·log p − (1−y)·log(1−p)``, computed
stably as ``y·softplus(−z) + (1−y)·softplus(z)``. Defaults ``scale = 10``,
``bias = −10`` (SigLIP's initialisation, ``t' = log 10``, ``b = −10``).
"""

from __future__ import annotations

import numpy as np

from embedkit.losses.definition import CONVENTION_PAIRS, LossDefinition, SpecFields

BCE_FORMULA = "−y·log σ(z) − (1−y)·log(1−σ(z)), z = scale·cos + bias"


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow."""
    return np.logaddexp(0.0, z)


def binary_cross_entropy_loss(
    cosines: np.ndarray, similar: np.ndarray, *, scale: float = 10.0, bias: float = -10.0
) -> np.ndarray:
    """Per-pair BCE of ``σ(scale·cos + bias)`` against ``y``, float64.

    >>> round(float(binary_cross_entropy_loss(np.array([1.0]), np.array([1]))[0]), 4)
    0.6931
    """
    z = scale * np.asarray(cosines, dtype=np.float64) + bias
    y = np.asarray(similar).astype(bool)
    return np.where(y, softplus(-z), softplus(z))


def definition(spec: SpecFields) -> LossDefinition:
    """Binary cross-entropy on scaled and shifted cosine similarities."""
    return LossDefinition(BCE_FORMULA, "cosine similarity", CONVENTION_PAIRS, ("scale", "bias"))
