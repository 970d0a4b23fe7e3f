"""InfoNCE / NT-Xent over labelled rows (van den Oord et al. 2018; SimCLR).

For every ordered positive pair (a, p) (same label, a ≠ p) with cosine similarities s:
``ℓ(a,p) = −log( exp(s_ap/τ) / (exp(s_ap/τ) + Σ_{n: label ≠ label_a} exp(s_an/τ)) )``
``      = softplus( logsumexp_n(s_an/τ) − s_ap/τ )``,
averaged over positive pairs: pytorch-metric-learning's ``NTXentLoss`` with its default
mean reduction. Other positives of the anchor are not in the denominator.
"""

from __future__ import annotations

import numpy as np

from embedkit.losses.bce import softplus
from embedkit.losses.definition import LossDefinition, SpecFields

INFONCE_FORMULA = "−log(exp(s_ap/τ) / (exp(s_ap/τ) + Σ_n exp(s_an/τ))), s = cosine"


def masked_logsumexp(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise ``log Σ_{mask} exp(values)``; ``-inf`` for rows with an empty mask."""
    masked = np.where(mask, values, -np.inf)
    peak = masked.max(axis=1, initial=-np.inf)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(masked - safe[:, None]).sum(axis=1))


def info_nce_block(
    cosines: np.ndarray, anchors: np.ndarray, labels: np.ndarray, *, temperature: float
) -> dict[str, np.ndarray]:
    """Items for a block of anchors.

    ``cosines`` is (B, n) float64: cosine of each anchor (row ids ``anchors``) with every row.
    Returns columns ``anchor, positive, s_ap, neg_lse, loss`` (``neg_lse`` is
    ``logsumexp_n(s_an/τ)``), ordered by anchor then positive.
    """
    logits = cosines / temperature
    anchor_labels = labels[anchors]
    same = anchor_labels[:, None] == labels[None, :]
    negative = ~same
    neg_lse = masked_logsumexp(logits, negative)
    same[np.arange(len(anchors)), anchors] = False
    rows, positives = np.nonzero(same)
    pos_logits = logits[rows, positives]
    loss = softplus(neg_lse[rows] - pos_logits)
    return {
        "anchor": anchors[rows],
        "positive": positives.astype(np.int64),
        "s_ap": cosines[rows, positives],
        "neg_lse": neg_lse[rows],
        "loss": loss,
    }


def definition(spec: SpecFields) -> LossDefinition:
    """InfoNCE / NT-Xent over ordered positive pairs, cosine similarities over a temperature."""
    return LossDefinition(INFONCE_FORMULA, "cosine similarity",
                          "items: ordered positive pairs (same label, a ≠ p); negatives: other labels", ("temperature",))
