"""inspect: norms, bad rows, duplicates, label pairs, distance distributions and the suggested margin."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from embedkit.dataset import Dataset, LoadedEmbeddings
from embedkit.inspection import FIGURE_PARTS, inspect_embeddings
from embedkit.io import load_allowing_nonfinite
from embedkit.pair_distances import (
    all_pair_distances,
    margin_errors,
    pair_distances,
    ranking_error,
    suggest_margin,
)
from embedkit.pairs import count_label_pairs
from embedkit.repeated_rows import exact_duplicates
from tests.conftest import SAMPLE, clustered


def loaded(x, labels=None):
    return LoadedEmbeddings(Dataset(x, "test", labels=labels), 0, 0, np.ones(len(x), bool))


def two_shells(n_per_class=12, classes=4, dim=6, pos_max=1.0, neg_min=3.0, seed=0):
    """Classes far apart, each inside a ball of radius pos_max/2: positives <= pos_max, negatives >= neg_min."""
    rng = np.random.default_rng(seed)
    centres = np.eye(classes, dim) * (neg_min + pos_max) * 2
    offsets = rng.standard_normal((classes * n_per_class, dim))
    offsets *= (pos_max / 2) * rng.uniform(0.2, 1.0, (len(offsets), 1)) / np.linalg.norm(offsets, axis=1, keepdims=True)
    labels = np.repeat(np.arange(classes), n_per_class)
    return centres[labels] + offsets, labels


def test_margin_is_the_middle_of_a_gap():
    s = suggest_margin(np.array([0.2, 0.4, 1.0]), np.array([3.0, 3.5, 4.0]))
    assert s.margin == 2.0
    assert s.negatives_inside == 0 and s.positives_beyond == 0
    assert any("separated" in line for line in s.reasoning)


def test_margin_on_separated_clusters():
    x, labels = two_shells()
    d = pair_distances(x, labels)
    pos_max, neg_min = d.positive.max, d.negative.min
    assert pos_max <= 1.0 < 3.0 <= neg_min
    assert d.margin.margin == pytest.approx((pos_max + neg_min) / 2)
    assert d.overlap == 0 and d.ranking_error == 0


def test_margin_between_two_equal_variance_gaussians():
    # Positive distances ~ N(1, 0.25), negatives ~ N(2, 0.25): they overlap, and the
    # balanced-error threshold is where the densities cross, 1.5 (errors 2.3 % each).
    rng = np.random.default_rng(0)
    pos = rng.normal(1.0, 0.25, 50000)
    neg = rng.normal(2.0, 0.25, 500000)  # ten times more negatives: the rule must not care
    s = suggest_margin(pos, np.sort(neg))
    assert s.margin == pytest.approx(1.5, abs=0.03)
    assert s.negatives_inside == pytest.approx(0.0228, abs=0.004)
    assert s.positives_beyond == pytest.approx(0.0228, abs=0.004)


def test_margin_moves_with_the_data():
    rng = np.random.default_rng(1)
    low = suggest_margin(rng.normal(1.0, 0.1, 5000), np.sort(rng.normal(2.0, 0.1, 5000))).margin
    high = suggest_margin(rng.normal(3.0, 0.1, 5000), np.sort(rng.normal(4.0, 0.1, 5000))).margin
    assert high - low == pytest.approx(2.0, abs=0.05)


def test_margin_errors_are_strict_at_the_margin():
    inside, beyond = margin_errors(np.array([1.0, 2.0]), np.array([1.0, 3.0]), np.array([1.0]))
    assert inside.tolist() == [0.0] and beyond.tolist() == [0.5]  # D < m inside, D > m beyond


def test_ranking_error_counts_ties_half():
    assert ranking_error(np.array([1.0]), np.array([1.0])) == 0.5
    assert ranking_error(np.array([2.0]), np.sort(np.array([1.0, 3.0]))) == 0.5


def test_exact_pair_distances_match_a_loop(dtype):
    x, labels = clustered(30, 5, 3, seed=2, dtype=dtype)
    pos, neg = all_pair_distances(x, labels)
    expect_pos, expect_neg = [], []
    for i in range(30):
        for j in range(i + 1, 30):
            d = float(np.linalg.norm(x[i].astype(np.float64) - x[j].astype(np.float64)))
            (expect_pos if labels[i] == labels[j] else expect_neg).append(d)
    assert np.sort(pos) == pytest.approx(np.sort(expect_pos), abs=1e-6)
    assert np.sort(neg) == pytest.approx(np.sort(expect_neg), abs=1e-6)


def test_sampled_distances_agree_with_exact():
    x, labels = clustered(400, 8, 5, seed=3)
    exact = pair_distances(x, labels)
    sampled = pair_distances(x, labels, exact_pairs=1000, sample=20000, seed=1)
    assert exact.method == "exact" and sampled.method == "sampled" and sampled.seed == 1
    assert sampled.negative.count == 20000
    assert sampled.positive.quantiles[0.5] == pytest.approx(exact.positive.quantiles[0.5], rel=0.03)
    assert sampled.negative.quantiles[0.5] == pytest.approx(exact.negative.quantiles[0.5], rel=0.03)
    assert sampled.margin.margin == pytest.approx(exact.margin.margin, rel=0.05)
    again = pair_distances(x, labels, exact_pairs=1000, sample=20000, seed=1)
    assert again.margin.margin == sampled.margin.margin  # the seed makes it repeatable


def test_duplicates_exact_with_signed_zero_and_labels():
    x = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0], [2.0, 3.0000002]], dtype=np.float32)
    dup = exact_duplicates(x, np.array([0, 0, 1, 2, 2, 2]))
    assert dup.rows == 3 and dup.groups == 2 and dup.conflicting_groups == 1
    assert dup.example == (0, 1)


def test_duplicates_none_in_random_data():
    x, _ = clustered(500, 16, 4, seed=0)
    assert exact_duplicates(x).rows == 0


def test_label_pairs_and_figures_are_complete():
    x, labels = clustered(50, 4, 5, seed=6)
    result = inspect_embeddings(loaded(x, labels))
    pos, neg = count_label_pairs(labels)
    assert (result.labels.positive_pairs, result.labels.negative_pairs) == (pos, neg)
    assert result.labels.positive_fraction == pytest.approx(pos / (pos + neg))
    assert set(FIGURE_PARTS) <= set(result.figures)
    assert result.figures["positive_distance_p50"] == result.distances.positive.quantiles[0.5]


def test_norms_and_normalised_flag():
    x, labels = clustered(20, 4, 2, seed=0, dtype=np.float64)
    raw = inspect_embeddings(loaded(x, labels), parts=("norms",))
    assert not raw.norms.normalised and raw.distances is None
    unit = inspect_embeddings(loaded(x / np.linalg.norm(x, axis=1, keepdims=True), labels), parts=("norms",))
    assert unit.norms.normalised and unit.norms.min == pytest.approx(1.0)


def test_non_finite_rows_are_counted_by_inspect(tmp_path):
    x, labels = clustered(30, 4, 3, seed=1)
    x[3, 1] = np.nan
    x[7] = np.inf
    x[9, 0] = np.nan
    x[9, 2] = np.inf  # NaN and Inf: counted as a NaN row
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "e.labels.npy", labels)
    got = load_allowing_nonfinite(str(tmp_path / "e.npy"))
    assert (got.nan_rows, got.inf_rows, got.nonfinite_rows) == (2, 1, 3)
    result = inspect_embeddings(got)
    assert result.figures["nan_rows"] == 2 and result.figures["inf_rows"] == 1
    assert np.isfinite(result.norms.max) and result.labels.positive_pairs == count_label_pairs(
        np.delete(labels, [3, 7, 9]))[0]


def test_cli_inspect_sample_data_json(run_cli):
    result = run_cli("inspect", SAMPLE / "emb.npy", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["rows"] == 4000 and payload["norms"]["l2_normalised"] is True
    assert payload["labels"]["classes"] == 40
    d = payload["distances"]
    assert d["method"] == "sampled" and d["sample"] == 200000 and d["seed"] == 0
    assert d["positive"]["quantiles"]["p50"] < d["margin"]["suggested"] < d["negative"]["quantiles"]["p50"]
    assert payload["figures"]["suggested_margin"] == d["margin"]["suggested"]


def test_cli_inspect_prints_distributions_and_margin(run_cli):
    result = run_cli("inspect", SAMPLE / "seed" / "faces.npy")
    assert result.exit_code == 0, result.stderr
    for text in ("4 rows × 2", "Pair distances", "Distance histogram", "Suggested margin", "all pairs i < j, exact"):
        assert text in result.stdout
    # The seed's faces: positives at 0.0707, the closest negative (A2, B2) at 0.8485.
    payload = json.loads(run_cli("inspect", SAMPLE / "seed" / "faces.npy", "--json").stdout)
    assert payload["distances"]["margin"]["suggested"] == pytest.approx((0.0707107 + 0.8485281) / 2, abs=1e-5)


def test_cli_inspect_without_labels(run_cli, tmp_path):
    np.save(tmp_path / "e.npy", np.eye(4, dtype=np.float32))
    result = run_cli("inspect", tmp_path / "e.npy", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["labels"] is None and payload["distances"] is None and "no labels" in payload["notes"][0]


def test_cli_plot(run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "d.png"
    result = run_cli("inspect", SAMPLE / "seed" / "faces.npy", "--plot", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*partial"))


def test_cli_plot_without_matplotlib(run_cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    result = run_cli("inspect", SAMPLE / "seed" / "faces.npy", "--plot", tmp_path / "d.png")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'embedkit[plot]'"


def test_library_never_imports_the_cli_stack():
    import subprocess

    code = ("import sys, embedkit.metrics, embedkit.checks, embedkit.inspection, embedkit.io; "
            "print(sorted(m for m in ('typer', 'rich', 'matplotlib', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_non_finite_rows_through_the_cli(run_cli, tmp_path):
    x, labels = clustered(30, 4, 3, seed=1)
    x[[2, 5], 0] = np.nan
    x[8, 1] = -np.inf
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "e.labels.npy", labels)
    r = run_cli("inspect", tmp_path / "e.npy", "--json")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert (payload["nan_rows"], payload["inf_rows"]) == (2, 1)
    assert payload["labels"]["classes"] == 3 and "left out" in payload["notes"][0]
    assert "<- not finite" in run_cli("inspect", tmp_path / "e.npy").stdout
