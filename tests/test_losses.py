"""Every loss against the seed's worked example, slow loop oracles, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from embedkit.errors import EmbedkitError, OptionError
from embedkit.execution import Execution
from embedkit.losses.compute import LossSpec, compute_loss
from embedkit.losses.contrastive import contrastive_loss
from embedkit.losses.result import reduce_losses
from embedkit.pairs import first_pair_per_class
from tests import oracles
from tests.conftest import SEED_FACES, SEED_LABELS, SEED_PAIRS, clustered, dataset

# -- the seed's worked example (seed 002) ------------------------------------------------


def test_seed_worked_example_distances_and_losses_follow_the_formula() -> None:
    result = compute_loss(dataset(SEED_FACES, SEED_LABELS), LossSpec("contrastive", margin=1.0, reduction="sum"),
                          pairs=SEED_PAIRS, trace=4)
    d = result.head["d"]
    np.testing.assert_allclose(d, [math.sqrt(0.005), math.sqrt(0.98), math.sqrt(0.72), math.sqrt(0.005)], rtol=1e-12)
    expected = [0.005, (1 - math.sqrt(0.98)) ** 2, (1 - math.sqrt(0.72)) ** 2, 0.005]
    np.testing.assert_allclose(result.head["loss"], expected, rtol=1e-12)
    # The seed printed 0.0230 and 0.0331 from rounded intermediates; the formula gives:
    assert round(float(result.head["loss"][2]), 4) == 0.0229
    assert round(result.loss, 4) == 0.0330
    assert result.count == 4 and result.active == 4
    assert result.max_item is not None and (result.max_item["i"], result.max_item["j"]) == (1, 3)


def test_seed_margin_sweep_of_the_a1_b1_pair() -> None:
    pair = {"i": np.array([0]), "j": np.array([2]), "y": np.array([0])}
    result = compute_loss(dataset(SEED_FACES, SEED_LABELS),
                          LossSpec("contrastive", reduction="sum", margins=(0.5, 1.0, 1.5, 2.0)), pairs=pair)
    d = math.sqrt(0.98)
    losses = [p.loss for p in result.sweep]
    np.testing.assert_allclose(losses, [0.0, (1 - d) ** 2, (1.5 - d) ** 2, (2 - d) ** 2], rtol=1e-12)
    # The seed printed 0.2601 and 1.0203; its own formula gives 0.2602 and 1.0202.
    assert [round(v, 4) for v in losses] == [0.0, 0.0001, 0.2602, 1.0202]
    assert [p.active for p in result.sweep] == [0, 1, 1, 1]


# -- oracles --------------------------------------------------------------------------


def small(dtype: type, rows: int = 14, dim: int = 5, classes: int = 3, seed: int = 3):
    return clustered(rows, dim, classes, seed=seed, spread=0.6, dtype=dtype)


@pytest.mark.parametrize("form", ["squared", "halved", "linear"])
def test_contrastive_over_label_pairs_matches_the_loop_oracle(dtype: type, form: str) -> None:
    x, labels = small(dtype)
    x = x * 0.4
    result = compute_loss(dataset(x, labels), LossSpec("contrastive", margin=1.2, form=form, reduction="none"))
    expected = oracles.contrastive_pairs(x, oracles.label_pairs(labels), margin=1.2, form=form)
    np.testing.assert_allclose(result.items["loss"], expected, rtol=1e-5, atol=1e-6)


def test_contrastive_explicit_pairs_match_the_oracle(dtype: type) -> None:
    x, labels = small(dtype)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(x), 30), rng.integers(0, len(x), 30)
    y = rng.integers(0, 2, 30)
    result = compute_loss(dataset(x), LossSpec("contrastive", margin=2.0, reduction="none"), pairs={"i": i, "j": j, "y": y})
    expected = oracles.contrastive_pairs(x, list(zip(i, j, y)), margin=2.0)
    np.testing.assert_allclose(result.items["loss"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("squared", [True, False])
def test_triplet_over_label_triplets_matches_the_oracle(dtype: type, squared: bool) -> None:
    x, labels = small(dtype, rows=10)
    result = compute_loss(dataset(x, labels), LossSpec("triplet", margin=0.7, squared=squared, reduction="none"))
    triplets = oracles.label_triplets(labels)
    np.testing.assert_array_equal(result.items["anchor"], [t[0] for t in triplets])
    np.testing.assert_array_equal(result.items["negative"], [t[2] for t in triplets])
    np.testing.assert_allclose(result.items["loss"], oracles.triplet(x, triplets, 0.7, squared), rtol=1e-5, atol=1e-5)


def test_triplet_explicit_table_matches_the_oracle(dtype: type) -> None:
    x, labels = small(dtype, rows=10)
    triplets = oracles.label_triplets(labels)[::7]
    table = {k: np.array([t[n] for t in triplets]) for n, k in enumerate(("anchor", "positive", "negative"))}
    result = compute_loss(dataset(x, labels), LossSpec("triplet", margin=0.3, reduction="none"), triplets=table)
    np.testing.assert_allclose(result.items["loss"], oracles.triplet(x, triplets, 0.3, True), rtol=1e-5, atol=1e-6)


def test_npair_matches_the_oracle(dtype: type) -> None:
    x, labels = small(dtype, rows=20, classes=5)
    result = compute_loss(dataset(x, labels), LossSpec("npair", l2_reg=0.01, reduction="none"))
    anchors, positives, _ = first_pair_per_class(labels)
    np.testing.assert_allclose(result.items["loss"], oracles.npair(x, anchors, positives, 0.01), rtol=1e-5)


def test_npair_from_pairs_table_uses_similar_rows_only(dtype: type) -> None:
    x, labels = small(dtype, rows=20, classes=5)
    anchors, positives, _ = first_pair_per_class(labels)
    table = {"i": np.r_[anchors, 0], "j": np.r_[positives, 1], "y": np.r_[np.ones(len(anchors), int), 0]}
    result = compute_loss(dataset(x, labels), LossSpec("npair", reduction="none"), pairs=table)
    np.testing.assert_allclose(result.items["loss"], oracles.npair(x, anchors, positives), rtol=1e-5)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_infonce_matches_the_oracle(dtype: type, temperature: float) -> None:
    x, labels = small(dtype)
    result = compute_loss(dataset(x, labels), LossSpec("infonce", temperature=temperature, reduction="none"))
    np.testing.assert_allclose(result.items["loss"], oracles.infonce(x, labels, temperature), rtol=2e-4, atol=1e-6)


def test_supcon_matches_the_oracle(dtype: type) -> None:
    x, labels = small(dtype)
    labels[0] = 99  # a class of one: not an anchor, still in every denominator
    result = compute_loss(dataset(x, labels), LossSpec("supcon", temperature=0.2, reduction="none"))
    np.testing.assert_allclose(result.items["loss"], oracles.supcon(x, labels, 0.2), rtol=2e-4, atol=1e-6)
    assert 0 not in result.items["anchor"]


def test_bce_matches_the_oracle(dtype: type) -> None:
    x, labels = small(dtype)
    result = compute_loss(dataset(x, labels), LossSpec("bce", scale=5.0, bias=-2.0, reduction="none"))
    expected = oracles.bce(x, oracles.label_pairs(labels), scale=5.0, bias=-2.0)
    np.testing.assert_allclose(result.items["loss"], expected, rtol=1e-5, atol=1e-6)


# -- the tiled all-pairs kernel equals enumeration ------------------------------------


@pytest.mark.parametrize("kind,form", [("contrastive", "squared"), ("contrastive", "halved"),
                                       ("contrastive", "linear"), ("bce", "squared")])
def test_tiled_scan_equals_the_enumerated_oracle(dtype: type, kind: str, form: str) -> None:
    x, labels = clustered(700, 6, 9, seed=5, spread=0.8, dtype=dtype)
    x = x * 0.3
    spec = LossSpec(kind, margin=1.0, form=form, margins=(0.5, 2.0) if kind == "contrastive" else ())
    enumerated = compute_loss(dataset(x, labels), spec, top=8, enumerate_pairs_below=10**12)
    tiled = compute_loss(dataset(x, labels), spec, top=8, enumerate_pairs_below=0)
    assert tiled.details["method"] == "tiled kernel" and enumerated.details["method"] == "enumerated"
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert tiled.count == enumerated.count == 700 * 699 // 2
    np.testing.assert_allclose(tiled.total, enumerated.total, rtol=tol)
    assert abs(tiled.active - enumerated.active) <= (3 if dtype == np.float32 else 0)
    for a, b in zip(tiled.sweep, enumerated.sweep):
        np.testing.assert_allclose(a.total, b.total, rtol=tol)
    np.testing.assert_allclose(tiled.top["loss"], enumerated.top["loss"], rtol=tol)
    if dtype == np.float64:
        np.testing.assert_array_equal(tiled.top["i"], enumerated.top["i"])
        np.testing.assert_array_equal(tiled.top["j"], enumerated.top["j"])
    np.testing.assert_array_equal(tiled.head["j"], enumerated.head["j"])


def test_tiled_scan_does_not_depend_on_tile_shape_or_workers() -> None:
    from embedkit.losses.allpairs import scan_label_pairs

    x, labels = clustered(333, 4, 5, seed=1, spread=0.7, dtype=np.float64)
    runs = [scan_label_pairs(x, labels, form=0, margins=(2.0,), tile_rows=r, tile_cols=c, top=4, execution=Execution.local(w))
            for r, c, w in [(512, 2048, 1), (7, 13, 2), (64, 32, 2), (1, 400, 1)]]
    for run in runs[1:]:
        np.testing.assert_allclose(run.totals, runs[0].totals, rtol=1e-12)
        assert run.count == runs[0].count == 333 * 332 // 2
        np.testing.assert_array_equal(run.top["i"], runs[0].top["i"])
        np.testing.assert_array_equal(run.top["j"], runs[0].top["j"])


# -- reductions -------------------------------------------------------------------------


def test_reductions_relate_as_documented() -> None:
    x, labels = small(np.float64)
    results = {r: compute_loss(dataset(x, labels), LossSpec("contrastive", margin=0.8, reduction=r))
               for r in ("mean", "sum", "mean-nonzero", "none")}
    items = results["none"].items["loss"]
    assert results["none"].loss is None
    np.testing.assert_allclose(results["sum"].loss, items.sum())
    np.testing.assert_allclose(results["mean"].loss, items.mean())
    np.testing.assert_allclose(results["mean-nonzero"].loss, items[items > 0].mean())
    assert reduce_losses(np.zeros(3), "mean-nonzero") == 0.0


# -- properties ---------------------------------------------------------------------------

matrices = hnp.arrays(np.float64, st.tuples(st.integers(2, 9), st.integers(1, 4)),
                      elements=st.floats(-3, 3, allow_nan=False, allow_infinity=False))


@settings(max_examples=40, deadline=None)
@given(x=matrices, data=st.data(), kind=st.sampled_from(["contrastive", "triplet", "infonce", "supcon", "bce", "npair"]))
def test_losses_are_non_negative_and_row_permutation_invariant(x: np.ndarray, data: st.DataObject, kind: str) -> None:
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(x), max_size=len(x))))
    if kind == "npair" and (np.bincount(labels) >= 2).sum() < 2:
        return
    spec = LossSpec(kind, margin=1.0, temperature=0.5)
    first = compute_loss(dataset(x, labels), spec)
    perm = np.random.default_rng(0).permutation(len(x))
    second = compute_loss(dataset(x[perm], labels[perm]), spec)
    assert first.loss >= 0 and first.total >= 0
    if kind != "npair":  # npair picks the first two rows of each class: order matters by definition
        np.testing.assert_allclose(first.loss, second.loss, rtol=1e-9, atol=1e-12)
        assert first.count == second.count


@settings(max_examples=30, deadline=None)
@given(classes=st.integers(2, 4), per_class=st.integers(1, 4), margin=st.floats(0.1, 5.0),
       jitter=st.floats(0.0, 0.01))
def test_margin_losses_are_zero_when_every_margin_is_met(classes: int, per_class: int, margin: float, jitter: float) -> None:
    # Classes sit on a line 10·margin apart; members within `jitter` of their centre.
    rng = np.random.default_rng(classes * 10 + per_class)
    labels = np.repeat(np.arange(classes), per_class)
    x = np.stack([labels * 10.0 * margin, np.zeros(len(labels))], axis=1)
    x += jitter * rng.uniform(-1, 1, x.shape)
    same_free = np.stack([labels * 10.0 * margin, np.zeros(len(labels))], axis=1)
    contrastive = compute_loss(dataset(same_free, labels), LossSpec("contrastive", margin=margin))
    assert contrastive.total == 0.0 and contrastive.active == 0
    trip = compute_loss(dataset(x, labels), LossSpec("triplet", margin=margin, squared=False))
    assert trip.total == 0.0 and trip.active == 0


# -- option validation ---------------------------------------------------------------------


@pytest.mark.parametrize("spec,message", [
    (LossSpec("contrastive", margin=-1.0), "--margin"),
    (LossSpec("infonce", temperature=0.0), "--temperature"),
    (LossSpec("infonce", margins=(1.0,)), "--margins applies"),
    (LossSpec("npair", l2_reg=-1.0), "--l2-reg"),
    (LossSpec("contrastive", margins=(float("nan"),)), "--margins"),
])
def test_invalid_options_are_option_errors(spec: LossSpec, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        spec.validated()


def test_missing_labels_is_a_clear_error() -> None:
    with pytest.raises(EmbedkitError, match="needs labels"):
        compute_loss(dataset(SEED_FACES), LossSpec("contrastive"))


def test_pair_table_validation() -> None:
    with pytest.raises(EmbedkitError, match="outside 0..3"):
        compute_loss(dataset(SEED_FACES), LossSpec("contrastive"), pairs={"i": np.array([0]), "j": np.array([4]), "y": np.array([1])})
    with pytest.raises(EmbedkitError, match="expected 0"):
        compute_loss(dataset(SEED_FACES), LossSpec("contrastive"), pairs={"i": np.array([0]), "j": np.array([1]), "y": np.array([2])})
    with pytest.raises(EmbedkitError, match="same label"):
        compute_loss(dataset(SEED_FACES, SEED_LABELS), LossSpec("triplet"),
                     triplets={"anchor": np.array([0]), "positive": np.array([1]), "negative": np.array([1])})


def test_listing_too_many_items_points_to_mining() -> None:
    x, labels = small(np.float64)
    with pytest.raises(EmbedkitError, match="embedkit mine"):
        compute_loss(dataset(x, labels), LossSpec("triplet", reduction="none"), max_output_items=10)


@pytest.mark.parametrize("squared", [True, False])
def test_sorted_triplet_sums_equal_enumeration(dtype: type, squared: bool) -> None:
    x, labels = clustered(60, 4, 4, seed=2, spread=0.9, dtype=dtype)
    labels[0] = 17  # a class of one: never an anchor, always a negative
    spec = LossSpec("triplet", margin=0.8, squared=squared, margins=(0.1, 3.0))
    enumerated = compute_loss(dataset(x, labels), spec, top=6, trace=7, enumerate_triplets_below=10**12)
    summed = compute_loss(dataset(x, labels), spec, top=6, trace=7, enumerate_triplets_below=0)
    assert summed.details["method"] == "sorted prefix sums"
    assert summed.count == enumerated.count == len(oracles.label_triplets(labels))
    np.testing.assert_allclose(summed.total, enumerated.total, rtol=1e-10)
    assert summed.active == enumerated.active
    for a, b in zip(summed.sweep, enumerated.sweep):
        np.testing.assert_allclose(a.total, b.total, rtol=1e-10)
        assert a.active == b.active
    for key in ("anchor", "positive", "negative"):
        np.testing.assert_array_equal(summed.top[key], enumerated.top[key])
        np.testing.assert_array_equal(summed.head[key], enumerated.head[key])
    np.testing.assert_allclose(summed.top["loss"], enumerated.top["loss"], rtol=1e-10)


def test_contrastive_formula_helper() -> None:
    np.testing.assert_allclose(contrastive_loss(np.array([0.5, 0.5, 2.0]), np.array([1, 0, 0]), margin=1.0),
                               [0.25, 0.25, 0.0])


@pytest.mark.parametrize("offset", [0.0, 20.0, 50.0])
def test_tiled_scan_is_accurate_on_rows_sharing_a_large_offset(offset: float) -> None:
    """float32 rows far from the origin: ‖a‖²+‖b‖²−2ab cancels unless the rows are centred."""
    from embedkit.losses.allpairs import scan_label_pairs

    rng = np.random.default_rng(12)
    x = (offset + 0.05 * rng.standard_normal((800, 64))).astype(np.float32)
    labels = rng.integers(0, 6, 800)
    i, j = np.triu_indices(800, 1)
    d = np.linalg.norm(x[i].astype(np.float64) - x[j].astype(np.float64), axis=1)
    expected = contrastive_loss(d, labels[i] == labels[j], margin=0.45).sum()
    scan = scan_label_pairs(x, labels, form=0, margins=(0.45,))
    np.testing.assert_allclose(scan.totals[0], expected, rtol=2e-5)
