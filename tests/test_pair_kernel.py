"""The all-pairs loss kernels against a float64 loop, within the error bound their module
states, and their determinism across workers, engines and runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedkit.execution import Execution
from embedkit.losses import pair_kernel as pk
from embedkit.losses.allpairs import scan_label_pairs
from tests.conftest import clustered

FORMS = (pk.FORM_SQUARED, pk.FORM_HALVED, pk.FORM_LINEAR)


def one_tile(dtype: type, rows: int = 120, cols: int = 300, seed: int = 3):
    """Centred rows (as the scan makes them), their ``‖x − c‖²`` and the product tile of rows
    ``0..rows`` with columns ``0..cols`` (so the tile crosses the diagonal and a block edge)."""
    x, labels = clustered(cols, 24, 9, seed=seed, spread=0.8, dtype=dtype)
    xc = (x - x.mean(axis=0, dtype=np.float64)).astype(dtype)
    terms = np.einsum("ij,ij->i", xc.astype(np.float64), xc.astype(np.float64)).astype(dtype)
    g = xc[:rows] @ xc.T
    _, codes = np.unique(labels, return_inverse=True)
    return g, terms, codes.astype(np.int32)


def loop_oracle(g, terms, codes, margin, form):  # type: ignore[no-untyped-def]
    """Per-pair float64 losses of the tile values, pairs i < j, plus each pair's error bound
    as the module docstring states it (u of the tile dtype)."""
    gamma, alpha, beta = pk.form_coefficients(form)
    u = pk.unit_roundoff(g.dtype)
    delta = 9.0 * u * float(terms.max())
    losses, bounds, near = [], [], 0
    for i in range(g.shape[0]):
        for j in range(i + 1, g.shape[1]):
            d2 = max(float(terms[i]) + float(terms[j]) - 2.0 * float(g[i, j]), 0.0)
            d = math.sqrt(d2)
            if codes[i] == codes[j]:
                loss, bound = gamma * d2, gamma * delta
                near += d2 <= delta  # may round to 0 or away from it: active either way
            else:
                h = max(margin - d, 0.0)
                dd = min(math.sqrt(delta), delta / d if d > 0 else math.inf) + u * d
                dh = dd + 2.0 * u * margin
                loss = h * (alpha * h + beta)
                bound = dh if alpha == 0.0 else alpha * ((2.0 * h + dh) * dh + 2.0 * u * h * h)
                near += abs(d - margin) <= dh
            losses.append(loss)
            bounds.append(bound)
    return np.array(losses), np.array(bounds), near


def run_tile(g, terms, codes, margins, form, top=5):  # type: ignore[no-untyped-def]
    m = np.asarray(margins, dtype=np.float64)
    coef = np.array([*pk.form_coefficients(form), 2.0, 0.0, 1.0], dtype=g.dtype)
    sums, actives, counts = np.zeros(len(m)), np.zeros(len(m), np.int64), np.zeros(3, np.int64)
    best = (np.full(top, -np.inf), np.full(top, 2**62), np.full(top, 2**62), np.zeros(top))
    pk.contrastive_tile(g, terms[: g.shape[0]], terms, codes[: g.shape[0]], codes, 0, 0, m, m.astype(g.dtype), coef,
                        2.0 * pk.distance_slack(terms), sums, actives, counts, *best)
    return sums, actives, counts, best


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("form", FORMS)
def test_contrastive_tile_is_within_the_stated_bound_of_a_float64_loop(dtype: type, form: int) -> None:
    g, terms, codes = one_tile(dtype)
    margins = (6.0, 4.5, 8.0)  # clusters of spread 0.8 in 24-d: D ~ 5.5 inside, ~8 across
    sums, actives, counts, (top_loss, top_i, top_j, top_d) = run_tile(g, terms, codes, margins, form)
    u = pk.unit_roundoff(np.dtype(dtype))
    pairs = g.shape[0] * (g.shape[0] - 1) // 2 + g.shape[0] * (g.shape[1] - g.shape[0])
    assert counts[0] == pairs
    i, j = np.triu_indices(g.shape[0], 1, g.shape[1])
    assert counts[1] == int((codes[i] == codes[j]).sum())
    for k, margin in enumerate(margins):
        losses, bounds, near = loop_oracle(g, terms, codes, margin, form)
        tolerance = bounds.sum() + (pk.BLOCK - 1) * u * losses.sum() * (1 + 1e-3)
        assert abs(sums[k] - losses.sum()) <= tolerance
        assert tolerance < 1e-3 * losses.sum()  # the bound is tight enough to mean something
        assert abs(int(actives[k]) - int((losses > 0).sum())) <= near
        if k == 0:  # the top list is exact float64 arithmetic: the loop's top pairs
            order = np.lexsort((j, i, -losses))[:5]
            mine = np.lexsort((top_j, top_i, -top_loss))
            np.testing.assert_array_equal(top_i[mine], i[order])
            np.testing.assert_array_equal(top_j[mine], j[order])
            np.testing.assert_allclose(top_loss[mine], losses[order], rtol=1e-12)


def test_the_top_list_is_optional_and_changes_no_total() -> None:
    g, terms, codes = one_tile(np.float32)
    with_top = run_tile(g, terms, codes, (6.0,), pk.FORM_SQUARED, top=7)
    without = run_tile(g, terms, codes, (6.0,), pk.FORM_SQUARED, top=0)
    for a, b in zip(with_top[:3], without[:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", [pk.FORM_SQUARED, pk.FORM_LINEAR, pk.FORM_BCE])
def test_figures_are_bit_identical_across_workers_and_runs(form: int) -> None:
    x, labels = clustered(900, 16, 7, seed=5, spread=0.9)
    runs = [scan_label_pairs(x, labels, form=form, margins=(5.0, 3.0), tile_rows=64, tile_cols=300, top=6, execution=Execution.local(workers))
            for workers in (1, 2, 3, 2)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.totals, runs[0].totals)
        np.testing.assert_array_equal(run.actives, runs[0].actives)
        assert (run.count, run.similar, run.similar_active) == (runs[0].count, runs[0].similar,
                                                                runs[0].similar_active)
        for key in runs[0].top:
            np.testing.assert_array_equal(run.top[key], runs[0].top[key])


@pytest.mark.parametrize("form", [pk.FORM_SQUARED, pk.FORM_BCE])
def test_tile_shapes_agree_within_the_bound(form: int) -> None:
    """Another tile shape sums in another order, and BLAS rounds another tile shape's product
    differently (``d·u`` per pair, d = 16 here): float32 totals agree within twice
    ``(B − 1 + d)·u``, counts exactly, the top pairs exactly, their losses within ``d·u``."""
    x, labels = clustered(700, 16, 6, seed=8, spread=0.9)
    shapes = [(512, 2048), (33, 100), (64, 257), (1, 700)]
    runs = [scan_label_pairs(x, labels, form=form, margins=(5.0,), tile_rows=r, tile_cols=c, top=5, execution=Execution.local(2))
            for r, c in shapes]
    u = pk.unit_roundoff(np.dtype(np.float32))
    for run in runs[1:]:
        np.testing.assert_allclose(run.totals, runs[0].totals, rtol=2 * (pk.BLOCK - 1 + 16) * u)
        assert run.count == runs[0].count == 700 * 699 // 2
        assert run.similar == runs[0].similar
        np.testing.assert_array_equal(run.top["i"], runs[0].top["i"])
        np.testing.assert_array_equal(run.top["j"], runs[0].top["j"])
        np.testing.assert_allclose(run.top["loss"], runs[0].top["loss"], rtol=16 * u)


def test_similar_counts_match_the_labels() -> None:
    from embedkit.pairs import count_label_pairs

    x, labels = clustered(500, 8, 5, seed=2, spread=0.5)
    similar, dissimilar = count_label_pairs(labels)
    # Any int64 labels: the scan re-codes them densely as int32.
    scan = scan_label_pairs(x, labels * 10**12 - 7, form=pk.FORM_SQUARED, margins=(3.0,), tile_rows=50, tile_cols=120)
    assert (scan.similar, scan.count) == (similar, similar + dissimilar)
    assert scan.similar_active == similar  # distinct rows: every similar pair has D > 0


@pytest.mark.parametrize("layout", ["one class", "all distinct", "sorted runs", "random codes", "many classes"])
def test_similar_pairs_of_any_label_layout_match_the_loop(layout: str) -> None:
    """The contrastive kernel finds a tile's similar pairs through a hash table of the row
    labels (or, with few classes, evaluates the tile block by block): one class, distinct
    labels, runs, 40 random codes (which collide in the table of 256 slots) and 150 classes
    all give the loop's counts, totals and top pairs."""
    g, terms, _ = one_tile(np.float64)
    n = g.shape[1]
    rng = np.random.default_rng(11)
    codes = {
        "one class": np.zeros(n),
        "all distinct": rng.permutation(n),
        "sorted runs": np.sort(rng.integers(0, 7, n)),
        "random codes": rng.integers(0, 2**31 - 1, 40)[rng.integers(0, 40, n)],
        "many classes": rng.integers(0, 150, n),
    }[layout].astype(np.int32)
    sums, actives, counts, (top_loss, top_i, top_j, _) = run_tile(g, terms, codes, (6.0,), pk.FORM_SQUARED)
    i, j = np.triu_indices(g.shape[0], 1, n)
    losses, bounds, near = loop_oracle(g, terms, codes, 6.0, pk.FORM_SQUARED)
    assert counts[0] == len(i)
    assert counts[1] == int((codes[i] == codes[j]).sum())
    assert abs(sums[0] - losses.sum()) <= bounds.sum() + (pk.BLOCK - 1) * 2.0**-53 * losses.sum() * 1.001
    assert abs(int(actives[0]) - int((losses > 0).sum())) <= near
    order = np.lexsort((j, i, -losses))[:5]
    mine = np.lexsort((top_j, top_i, -top_loss))
    np.testing.assert_array_equal(top_i[mine], i[order])
    np.testing.assert_array_equal(top_j[mine], j[order])


def test_centring_once_gives_the_tiles_of_centring_per_tile() -> None:
    """Within the budget the scan centres the rows once instead of every column tile per
    stripe: the same tile-dtype subtraction, so the same figures bit for bit."""
    x, labels = clustered(1000, 16, 9, seed=4, spread=0.9)
    x += np.float32(40.0)  # a shared offset: centring matters
    assert x.nbytes > 0.05 * 2**20  # the small budget below cannot hold the centred copy
    once, per_tile = (scan_label_pairs(x, labels, form=pk.FORM_SQUARED, margins=(5.0, 3.0), tile_rows=64,
                                       tile_cols=100, execution=Execution.local(budget_mib=budget), top=6)
                      for budget in (64.0, 0.05))
    np.testing.assert_array_equal(once.totals, per_tile.totals)
    np.testing.assert_array_equal(once.actives, per_tile.actives)
    for key in once.top:
        np.testing.assert_array_equal(once.top[key], per_tile.top[key])
