"""Retrieval hard-negative selection as pure functions over per-query candidate lists.

A *candidate list* is one query's corpus documents in ranking order (score descending,
ties by corpus row ascending), padded with row ``-1``. For query q with positives P(q)
and ``p`` = the lowest positive score, the selection is (every filter optional):

1. candidates = list entries that are not positives of q (with ``range_max = B`` the
   list is the top ``B + P_max`` documents, sentence-transformers' window);
2. keep ``s + M <= p`` (absolute margin), ``s <= p - |p|·R`` (relative margin),
   ``s <= S_max``, ``s >= S_min``, and similarity to every positive ``<= T``;
3. survivors keep the list order; the first ``range_min`` survivors are skipped and,
   with ``range_max = B``, only survivor ranks ``< B`` stay;
4. ``top``: the first N; ``random``: N drawn without replacement (``numpy`` PCG64 seeded
   with ``seed``, one draw per query in query order), kept in ranking order.

sentence-transformers 6.x ``mine_hard_negatives`` removes ``s > p·(1 − R)``; for a
negative ``p`` that keeps *more* similar documents, so the sign-safe ``p − |p|·R`` is used
here (identical for ``p >= 0``). Its "random" draws from ``max(survivors, N)`` slots and
drops the ``-inf`` ones; here a query with fewer survivors simply gets fewer negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embedkit.choices import DEFAULT_RETRIEVAL_NEGATIVES, OutputFormat, Sampling

#: Training-file formats (written by :mod:`embedkit.mining.retrieval_output`); here so that the
#: CLI can name them without importing the writers.
FORMATS: tuple[OutputFormat, ...] = ("triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding")
#: Filter names in the order they are applied (and counted).
FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score", "max_positive_similarity")


@dataclass(frozen=True)
class SelectionSpec:
    """Parameters of the selection (``None`` = filter off)."""

    negatives: int = DEFAULT_RETRIEVAL_NEGATIVES
    range_min: int = 0
    range_max: int | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    max_positive_similarity: float | None = None
    sampling: Sampling = "top"
    seed: int = 0

    @property
    def needed(self) -> int:
        """Survivors a ``top`` selection needs to look at: ``range_min + negatives``."""
        return self.range_min + self.negatives


@dataclass(frozen=True)
class Selection:
    """Chosen negatives per query: ``(m, N)`` arrays padded with ``-1`` / NaN.

    ``positions`` index the candidate list (0-based); ``removed`` counts candidates each
    filter removed (in :data:`FILTERS` order, each among those the earlier ones kept);
    ``survivors`` per query (after ranks), ``settled`` whether the list was deep enough.
    """

    rows: np.ndarray
    scores: np.ndarray
    positions: np.ndarray
    survivors: np.ndarray
    settled: np.ndarray
    removed: dict[str, int] = field(default_factory=dict)
    examined: int = 0


def keep_mask(
    scores: np.ndarray,
    rows: np.ndarray,
    is_positive: np.ndarray,
    lowest_positive: np.ndarray,
    spec: SelectionSpec,
    positive_similarity: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Elementwise filters over ``(m, K)`` candidate lists.

    Returns the mask of survivors and, per filter, the mask of entries it removed among
    those the earlier filters kept (padding and positives are never counted).
    """
    s = scores.astype(np.float64)
    p = np.asarray(lowest_positive, dtype=np.float64)[:, None]
    alive = (rows >= 0) & ~is_positive
    removed: dict[str, np.ndarray] = {}

    def apply(name: str, keep: np.ndarray) -> None:
        nonlocal alive
        removed[name] = alive & ~keep
        alive = alive & keep

    if spec.absolute_margin is not None:
        apply("absolute_margin", s + spec.absolute_margin <= p)
    if spec.relative_margin is not None:
        apply("relative_margin", s <= p - np.abs(p) * spec.relative_margin)
    if spec.max_score is not None:
        apply("max_score", s <= spec.max_score)
    if spec.min_score is not None:
        apply("min_score", s >= spec.min_score)
    if spec.max_positive_similarity is not None:
        if positive_similarity is None:
            raise ValueError("max_positive_similarity needs the candidates' similarity to the positives")
        apply("max_positive_similarity", ~(positive_similarity.astype(np.float64) > spec.max_positive_similarity))
    return alive, removed


def select_negatives(
    rows: np.ndarray,
    scores: np.ndarray,
    is_positive: np.ndarray,
    lowest_positive: np.ndarray,
    spec: SelectionSpec,
    *,
    exhaustive: np.ndarray | None = None,
    positive_similarity: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> Selection:
    """Apply the filters, ranks and sampling to ``(m, K)`` ranked candidate lists.

    ``exhaustive[q]`` says the list holds every document the selection could need (the
    whole window, or the whole corpus); a ``top`` query whose list is not exhaustive is
    *settled* only when it holds ``range_min + N`` survivors, else it needs a deeper list.
    Filter removals are counted over the whole list with ``range_max`` (as
    sentence-transformers counts its window), else up to the last survivor looked at.
    ``rng`` (default: a new generator seeded with ``spec.seed``) draws ``random`` samples.

    >>> rows = np.array([[4, 7, 2, 9]])
    >>> scores = np.array([[0.9, 0.8, 0.5, 0.4]], dtype=np.float32)
    >>> pos = np.array([[True, False, False, False]])
    >>> spec = SelectionSpec(negatives=2, relative_margin=0.1)
    >>> select_negatives(rows, scores, pos, np.array([0.9]), spec).rows.tolist()
    [[7, 2]]
    """
    m, width = rows.shape
    n = spec.negatives
    alive, removed = keep_mask(scores, rows, is_positive, lowest_positive, spec, positive_similarity)
    rank = np.cumsum(alive, axis=1) - 1  # survivor rank of each alive entry
    eligible = alive & (rank >= spec.range_min)
    if spec.range_max is not None:
        eligible &= rank < spec.range_max
    if exhaustive is None:
        exhaustive = np.ones(m, dtype=bool)
    total_alive = alive.sum(axis=1)
    settled = exhaustive | (total_alive >= spec.needed)

    if spec.range_max is not None or spec.sampling == "random":
        examined = rows >= 0
    else:
        # Entries up to the needed-th survivor: what a top selection looks at.
        last = np.argmax(alive & (rank == spec.needed - 1), axis=1)
        stop = np.where(total_alive >= spec.needed, last + 1, width)
        examined = (np.arange(width)[None, :] < stop[:, None]) & (rows >= 0)
    counts = {name: int((mask & examined).sum()) for name, mask in removed.items()}

    out_pos = np.full((m, n), -1, dtype=np.int64)
    if spec.sampling == "top":
        chosen = eligible & (rank < spec.needed)
        q, col = np.nonzero(chosen)
        slot = rank[q, col] - spec.range_min
        out_pos[q, slot] = col
    else:
        rng = rng if rng is not None else np.random.default_rng(spec.seed)
        for i in range(m):
            pool = np.flatnonzero(eligible[i])
            if len(pool) > n:
                pool = np.sort(rng.choice(pool, size=n, replace=False))
            out_pos[i, : len(pool)] = pool
    have = out_pos >= 0
    safe = np.where(have, out_pos, 0)
    out_rows = np.where(have, np.take_along_axis(rows, safe, axis=1), -1)
    out_scores = np.where(have, np.take_along_axis(scores, safe, axis=1), np.nan).astype(np.float32)
    return Selection(rows=out_rows, scores=out_scores, positions=out_pos, survivors=eligible.sum(axis=1),
                     settled=settled, removed=counts, examined=int(examined.sum()))
