"""What an embedding file looks like: shape, norms, bad rows, duplicates, labels, pair
distances, and a suggested contrastive margin with its reasoning.

The pair distances and the suggested margin: :mod:`embedkit.pair_distances`; duplicate
rows: :mod:`embedkit.repeated_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.arrays import l2_normalized
from embedkit.choices import (
    DEFAULT_BINS,
    DEFAULT_EXACT_PAIRS,
    DEFAULT_SAMPLE,
    DEFAULT_SEED,
    SCAN_BUDGET_MIB,
)
from embedkit.chunking import DEFAULT_BUDGET_MIB, row_blocks, rows_per_block
from embedkit.dataset import LoadedEmbeddings
from embedkit.distances import squared_norms
from embedkit.pair_distances import QUANTILES, PairDistances, pair_distances
from embedkit.pairs import class_sizes, count_label_pairs
from embedkit.repeated_rows import Duplicates, exact_duplicates
from embedkit.shard_paths import Shard

#: Rows "look L2-normalised" when every finite row's norm is within this of 1.
NORMALISED_TOLERANCE = 1e-3
PARTS: tuple[str, ...] = ("norms", "duplicates", "labels", "distances")


@dataclass(frozen=True)
class NormStats:
    """L2 norms of the finite rows."""

    min: float
    mean: float
    max: float
    zero_rows: int
    normalised: bool


@dataclass(frozen=True)
class LabelStats:
    classes: int
    names: np.ndarray
    counts: np.ndarray
    singleton_classes: int
    positive_pairs: int
    negative_pairs: int

    @property
    def positive_fraction(self) -> float:
        total = self.positive_pairs + self.negative_pairs
        return self.positive_pairs / total if total else 0.0


@dataclass(frozen=True)
class Inspection:
    """Everything ``embedkit inspect`` reports; parts not asked for (or not computable) are None."""

    source: str
    rows: int
    dim: int
    dtype: str
    nan_rows: int
    inf_rows: int
    normalize: bool
    norms: NormStats | None
    duplicates: Duplicates | None
    labels: LabelStats | None
    distances: PairDistances | None
    notes: tuple[str, ...] = ()
    #: The files read, in row order (see :class:`embedkit.shards.Shard`).
    shards: tuple[Shard, ...] = ()

    @property
    def nonfinite_rows(self) -> int:
        return self.nan_rows + self.inf_rows

    @property
    def figures(self) -> dict[str, float]:
        """Every figure by its ``check`` name (see :func:`inspection_figure_names`)."""
        out: dict[str, float] = {
            "rows": self.rows, "dim": self.dim, "nan_rows": self.nan_rows, "inf_rows": self.inf_rows,
            "nonfinite_rows": self.nonfinite_rows,
        }
        if self.norms is not None:
            out.update(norm_min=self.norms.min, norm_mean=self.norms.mean, norm_max=self.norms.max,
                       zero_rows=self.norms.zero_rows)
        if self.duplicates is not None:
            out["duplicate_rows"] = self.duplicates.rows
        if self.labels is not None:
            out.update(classes=self.labels.classes, singleton_classes=self.labels.singleton_classes,
                       positive_pairs=self.labels.positive_pairs, negative_pairs=self.labels.negative_pairs,
                       positive_fraction=self.labels.positive_fraction)
        if self.distances is not None:
            d = self.distances
            out.update(overlap=d.overlap, ranking_error=d.ranking_error, suggested_margin=d.margin.margin,
                       margin_negatives_inside=d.margin.negatives_inside,
                       margin_positives_beyond=d.margin.positives_beyond,
                       positive_distance_mean=d.positive.mean, negative_distance_mean=d.negative.mean)
            for kind, dist in (("positive", d.positive), ("negative", d.negative)):
                for q, value in dist.quantiles.items():
                    out[f"{kind}_distance_{quantile_name(q)}"] = value
        return out


def quantile_name(q: float) -> str:
    """``0.05`` -> ``p05``; ``0.5`` -> ``p50``."""
    return f"p{round(q * 100):02d}"


#: Figure names and the part of the inspection that computes them.
FIGURE_PARTS: dict[str, str] = {
    **dict.fromkeys(("rows", "dim", "nan_rows", "inf_rows", "nonfinite_rows"), "base"),
    **dict.fromkeys(("norm_min", "norm_mean", "norm_max", "zero_rows"), "norms"),
    "duplicate_rows": "duplicates",
    **dict.fromkeys(("classes", "singleton_classes", "positive_pairs", "negative_pairs", "positive_fraction"), "labels"),
    **dict.fromkeys(("overlap", "ranking_error", "suggested_margin", "margin_negatives_inside",
                     "margin_positives_beyond", "positive_distance_mean", "negative_distance_mean"), "distances"),
    **{f"{kind}_distance_{quantile_name(q)}": "distances" for kind in ("positive", "negative") for q in QUANTILES},
}


def norm_stats(x: np.ndarray, *, budget_mib: float = SCAN_BUDGET_MIB, rows: np.ndarray | None = None) -> NormStats:
    """Min / mean / max L2 norm, zero rows, and whether all norms are 1 ± 1e-3.

    ``rows`` (a boolean mask) restricts the figures to those rows; the matrix is read in
    blocks either way (a memory map by plain file reads), never copied whole."""
    lo, hi, total, zeros, far, count = np.inf, -np.inf, 0.0, 0, 0.0, 0
    step = rows_per_block(x.shape[1] * 8, budget_mib)
    for start, stop, block in row_blocks(x, step):
        if rows is not None:
            block = block[rows[start:stop]]
            if not len(block):
                continue
        norms = np.sqrt(squared_norms(np.asarray(block, dtype=np.float64)))
        lo, hi = min(lo, float(norms.min())), max(hi, float(norms.max()))
        total += float(norms.sum())
        zeros += int((norms == 0).sum())
        far = max(far, float(np.abs(norms - 1.0).max()))
        count += len(norms)
    return NormStats(min=lo, mean=total / max(count, 1), max=hi, zero_rows=zeros,
                     normalised=far <= NORMALISED_TOLERANCE)


def label_stats(labels: np.ndarray, names: np.ndarray | None) -> LabelStats:
    sizes = class_sizes(labels)
    present = np.flatnonzero(sizes)
    similar, dissimilar = count_label_pairs(labels)
    shown = names[present] if names is not None else present
    return LabelStats(classes=len(present), names=shown, counts=sizes[present],
                      singleton_classes=int((sizes == 1).sum()), positive_pairs=similar, negative_pairs=dissimilar)


def inspect_embeddings(
    loaded: LoadedEmbeddings,
    *,
    parts: tuple[str, ...] = PARTS,
    normalize: bool = False,
    exact_pairs: int = DEFAULT_EXACT_PAIRS,
    sample: int = DEFAULT_SAMPLE,
    seed: int = DEFAULT_SEED,
    bins: int = DEFAULT_BINS,
    budget_mib: float = DEFAULT_BUDGET_MIB,
) -> Inspection:
    """Inspect an embedding set; only ``parts`` (of norms, duplicates, labels, distances) are computed.

    Norms, duplicates and distances use the finite rows only (NaN/Inf rows are counted).
    With ``normalize``, duplicates and distances are measured on L2-normalised rows.
    """
    dataset = loaded.dataset
    notes: list[str] = []
    x = dataset.embeddings
    labels = dataset.labels
    finite: np.ndarray | None = None
    if loaded.nonfinite_rows:
        # Norms and duplicates skip the non-finite rows block by block; only what needs
        # the finite rows as one matrix (normalised rows, pair distances) gets a copy.
        finite = loaded.finite
        notes.append(f"{loaded.nonfinite_rows:,} rows with NaN or Inf are left out of every other figure")
    has_rows = loaded.nonfinite_rows < dataset.rows
    norms = norm_stats(x, budget_mib=budget_mib, rows=finite) if "norms" in parts and has_rows else None
    # Normalised rows are a new matrix anyway: only then are the finite rows copied first.
    needs_matrix = has_rows and normalize and bool({"duplicates", "distances"} & set(parts))
    row_labels = labels  # one per row of x (what exact_duplicates reads)
    if finite is not None and needs_matrix:
        keep = np.flatnonzero(finite)
        x, finite = np.asarray(x[keep]), None
        labels = row_labels = labels[keep] if labels is not None else None
    elif finite is not None and labels is not None:
        labels = labels[finite]
    work = l2_normalized(x) if normalize and needs_matrix else x
    duplicates = None
    if "duplicates" in parts and has_rows:
        duplicates = exact_duplicates(work, row_labels, budget_mib=budget_mib, rows=finite)
    label_info = distances = None
    if labels is None and {"labels", "distances"} & set(parts):
        notes.append("no labels: label counts and pair distances need labels (--labels FILE)")
    if labels is not None and {"labels", "distances"} & set(parts):
        label_info = label_stats(labels, dataset.label_names)
        if "distances" in parts:
            distances = pair_distances(work, labels, exact_pairs=exact_pairs, sample=sample, seed=seed,
                                       bins=bins, budget_mib=budget_mib,
                                       rows=np.flatnonzero(finite) if finite is not None else None)
            if distances is None:
                notes.append("pair distances need at least one positive and one negative pair")
    return Inspection(
        source=dataset.source, rows=dataset.rows, dim=dataset.dim, dtype=str(dataset.embeddings.dtype),
        nan_rows=loaded.nan_rows, inf_rows=loaded.inf_rows, normalize=normalize, norms=norms,
        duplicates=duplicates, labels=label_info, distances=distances, notes=tuple(notes), shards=dataset.shards,
    )
