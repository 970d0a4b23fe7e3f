"""Multi-class N-pair loss (Sohn 2016).

With one (anchor f_i, positive f_i⁺) pair per class and dot products:
``ℓ_i = log(1 + Σ_{j≠i} exp(f_i·f_j⁺ − f_i·f_i⁺))`` (= softmax cross-entropy of row i of
F·F⁺ᵀ against column i, as pytorch-metric-learning's ``NPairsLoss``), plus an optional
``λ·(‖f_i‖² + ‖f_i⁺‖²)`` per pair (Sohn's L2 regulariser), averaged over pairs.
"""

from __future__ import annotations

import numpy as np

from embedkit.losses.bce import softplus
from embedkit.losses.definition import LossDefinition, SpecFields
from embedkit.losses.infonce import masked_logsumexp

NPAIR_FORMULA = "log(1 + Σ_{j≠i} exp(f_i·f_j⁺ − f_i·f_i⁺)) + λ·(‖f_i‖² + ‖f_i⁺‖²)"


def n_pair_block(
    anchor_block: np.ndarray,
    positives: np.ndarray,
    first: int,
    *,
    l2_reg: float = 0.0,
) -> dict[str, np.ndarray]:
    """Terms for pairs ``first .. first+B-1``: columns ``s_pos, neg_lse, l2, loss``.

    ``anchor_block`` (B, d) float64 are f_i, ``positives`` (N, d) float64 all f_j⁺.
    ``neg_lse`` is ``logsumexp_{j≠i}(f_i·f_j⁺)`` (``-inf`` when N = 1).
    """
    logits = anchor_block @ positives.T
    rows = np.arange(len(anchor_block))
    columns = first + rows
    s_pos = logits[rows, columns]
    others = np.ones_like(logits, dtype=bool)
    others[rows, columns] = False
    neg_lse = masked_logsumexp(logits, others)
    l2 = l2_reg * (
        np.einsum("ij,ij->i", anchor_block, anchor_block)
        + np.einsum("ij,ij->i", positives[columns], positives[columns])
    )
    return {"s_pos": s_pos, "neg_lse": neg_lse, "l2": l2, "loss": softplus(neg_lse - s_pos) + l2}


def definition(spec: SpecFields) -> LossDefinition:
    """The N-pair loss on dot products, one (anchor, positive) pair per class."""
    return LossDefinition(NPAIR_FORMULA, "dot product",
                          "one (anchor, positive) pair per class; other classes' positives are negatives", ("l2_reg",))
