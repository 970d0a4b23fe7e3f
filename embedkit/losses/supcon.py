"""Supervised contrastive loss, L_out (Khosla et al. 2020).

For an anchor i with positives P(i) (same label, ≠ i) and A(i) = all rows ≠ i,
cosine similarities s and temperature τ:
``ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} log( exp(s_ip/τ) / Σ_{a∈A(i)} exp(s_ia/τ) )``
``    = logsumexp_{a∈A(i)}(s_ia/τ) − mean_{p∈P(i)}(s_ip/τ)``.
Items are the anchors with at least one positive; the default reduction averages them.
"""

from __future__ import annotations

import numpy as np

from embedkit.losses.definition import LossDefinition, SpecFields
from embedkit.losses.infonce import masked_logsumexp

SUPCON_FORMULA = "−(1/|P(i)|)·Σ_p log(exp(s_ip/τ) / Σ_{a≠i} exp(s_ia/τ)), s = cosine"


def supervised_contrastive_block(
    cosines: np.ndarray, anchors: np.ndarray, labels: np.ndarray, *, temperature: float
) -> dict[str, np.ndarray]:
    """Items for a block of anchors: columns ``anchor, positives, mean_s_ap, lse, loss``.

    ``cosines`` is (B, n) float64 against every row; anchors without a positive are dropped.
    """
    logits = cosines / temperature
    rows = np.arange(len(anchors))
    others = np.ones_like(logits, dtype=bool)
    others[rows, anchors] = False
    lse = masked_logsumexp(logits, others)
    positive = labels[anchors][:, None] == labels[None, :]
    positive[rows, anchors] = False
    counts = positive.sum(axis=1)
    keep = counts > 0
    mean_pos = np.where(positive, logits, 0.0).sum(axis=1)[keep] / counts[keep]
    return {
        "anchor": anchors[keep],
        "positives": counts[keep].astype(np.int64),
        "mean_s_ap": mean_pos * temperature,
        "lse": lse[keep],
        "loss": lse[keep] - mean_pos,
    }


def definition(spec: SpecFields) -> LossDefinition:
    """SupCon L_out over anchors with a positive, cosine similarities over a temperature."""
    return LossDefinition(SUPCON_FORMULA, "cosine similarity",
                          "items: anchors with a positive (same label); denominator: all other rows", ("temperature",))
