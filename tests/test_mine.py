"""`embedkit.mining`: every strategy's exact path against a brute-force oracle written here.

The oracle holds the full float64 distance matrix of a small set and applies each
definition literally. The miner computes in the input's dtype, so comparisons allow a
tolerance ``tol``: an item within ``tol`` of a band edge may go either way (a tie), any
item clearly inside must be found, any item clearly outside must not be.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import InputError, OptionError
from embedkit.mining import blocked
from embedkit.mining.keys import make_slots, prepare
from embedkit.mining.strategies import MineSpec, mine
from embedkit.tiles import tile_shape
from tests.conftest import clustered

# -- the oracle ------------------------------------------------------------------------------


def oracle_distances(x: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        xn = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
        return 1.0 - xn @ xn.T
    d = np.zeros((len(x), len(x)))
    for i in range(len(x)):
        d[i] = np.sqrt(((x - x[i]) ** 2).sum(axis=1))
    return d


def positives_of(labels: np.ndarray, a: int) -> np.ndarray:
    same = np.flatnonzero(labels == labels[a])
    return same[same != a]


def negatives_of(labels: np.ndarray, a: int) -> np.ndarray:
    return np.flatnonzero(labels != labels[a])


def tolerance(dtype: type, d: np.ndarray) -> float:
    scale = max(1.0, float(d.max()))
    return (1e-4 if dtype == np.float32 else 1e-8) * scale


def triplets_of(result) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    it = result.items
    return set(zip(it["anchor"].tolist(), it["positive"].tolist(), it["negative"].tolist()))


def data(kind: str, dtype: type, rows: int = 160, dim: int = 12, classes: int = 8, seed: int = 0):  # type: ignore[no-untyped-def]
    if kind == "clustered":
        return clustered(rows, dim, classes, seed=seed, spread=0.6, dtype=dtype)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, dim)).astype(dtype), rng.integers(0, classes, rows).astype(np.int64)


KINDS = ["random", "clustered"]


def check_items_valid(result, labels: np.ndarray, d: np.ndarray, tol: float) -> None:  # type: ignore[no-untyped-def]
    it = result.items
    if "negative" in it:
        a, p, n = it["anchor"], it["positive"], it["negative"]
        assert (a != p).all()
        assert (labels[a] == labels[p]).all()
        assert (labels[a] != labels[n]).all()
        np.testing.assert_allclose(it["d_ap"], d[a, p], atol=tol)
        np.testing.assert_allclose(it["d_an"], d[a, n], atol=tol)
    else:
        i, j = it["i"], it["j"]
        assert (i < j).all()
        assert (labels[i] != labels[j]).all()
        assert (it["y"] == 0).all()
        np.testing.assert_allclose(it["d"], d[i, j], atol=tol)


# -- hard and batch-hard ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 3])
def test_hard_equals_oracle(kind: str, k: int, dtype: type) -> None:
    x, labels = data(kind, dtype)
    d = oracle_distances(x)
    tol = tolerance(dtype, d)
    result = mine(x, labels, MineSpec("hard", negatives=k, positives="nearest", index="exact"))
    check_items_valid(result, labels, d, tol)
    it = result.items
    for a in range(len(labels)):
        pos = positives_of(labels, a)
        mine_rows = it["anchor"] == a
        if len(pos) == 0:
            assert not mine_rows.any()
            continue
        # nearest positive, ties allowed
        assert np.all(np.abs(d[a, it["positive"][mine_rows]] - d[a, pos].min()) <= tol)
        truth = np.sort(d[a, negatives_of(labels, a)])[:k]
        got = np.sort(d[a, it["negative"][mine_rows]])
        assert len(got) == len(truth)
        np.testing.assert_allclose(got, truth, atol=tol)
    assert result.index == "exact"
    assert result.anchors_with_none == 0


def test_hard_class_larger_than_any_k_list(dtype: type) -> None:
    """Two tight clusters: each anchor's nearest negative lies past its whole class."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (300, 4)), rng.normal(5, 0.1, (20, 4))]).astype(dtype)
    labels = np.array([0] * 300 + [1] * 20)
    d = oracle_distances(x)
    result = mine(x, labels, MineSpec("hard"))
    it = result.items
    assert len(it["anchor"]) == 320
    for a, n in zip(it["anchor"], it["negative"]):
        assert labels[n] != labels[a]
        assert d[a, n] <= d[a, negatives_of(labels, a)].min() + tolerance(dtype, d)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_hard_equals_oracle(kind: str, dtype: type) -> None:
    x, labels = data(kind, dtype, seed=3)
    d = oracle_distances(x)
    tol = tolerance(dtype, d)
    result = mine(x, labels, MineSpec("batch-hard"))
    check_items_valid(result, labels, d, tol)
    it = result.items
    anchors = [a for a in range(len(labels)) if len(positives_of(labels, a))]
    assert it["anchor"].tolist() == anchors
    for a, p, n in zip(it["anchor"], it["positive"], it["negative"]):
        assert d[a, p] >= d[a, positives_of(labels, a)].max() - tol
        assert d[a, n] <= d[a, negatives_of(labels, a)].min() + tol


@pytest.mark.parametrize("choice", ["all", "hardest", "nearest", "random"])
def test_positive_choices(choice: str) -> None:
    x, labels = data("clustered", np.float64, rows=90, classes=6, seed=5)
    d = oracle_distances(x)
    spec = MineSpec("hard", positives=choice, positives_count=3, seed=4) if choice == "random" else \
        MineSpec("hard", positives=choice)
    it = mine(x, labels, spec).items
    for a in range(len(labels)):
        got = it["positive"][it["anchor"] == a]
        pos = positives_of(labels, a)
        assert set(got.tolist()) <= set(pos.tolist())
        if choice == "all":
            assert sorted(got.tolist()) == sorted(pos.tolist())
        elif choice == "random":
            assert len(got) == min(3, len(pos)) and len(set(got.tolist())) == len(got)
        elif choice == "hardest":
            assert len(got) == 1 and d[a, got[0]] == pytest.approx(d[a, pos].max())
        else:
            assert len(got) == 1 and d[a, got[0]] == pytest.approx(d[a, pos].min())


def test_random_positives_follow_the_seed() -> None:
    x, labels = data("random", np.float64, rows=100, classes=3)
    first = mine(x, labels, MineSpec("hard", seed=1)).items["positive"]
    again = mine(x, labels, MineSpec("hard", seed=1)).items["positive"]
    other = mine(x, labels, MineSpec("hard", seed=2)).items["positive"]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


# -- semi-hard and easy --------------------------------------------------------------------------


def band_oracle(d: np.ndarray, labels: np.ndarray, a: int, p: int, strategy: str, margin: float,
                tol: float, squared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(clearly inside, possibly inside) negatives of the (a, p) band."""
    negs = negatives_of(labels, a)
    dn, dp = d[a, negs], d[a, p]
    if squared:  # compare in squared space; tolerance scaled accordingly
        dn, dp, t = dn**2, dp**2, tol * 2 * max(1.0, float(d.max()))
    else:
        t = tol
    if strategy == "semi-hard":
        inside = (dn > dp + t) & (dn <= dp + margin - t)
        maybe = (dn > dp - t) & (dn <= dp + margin + t)
    else:
        inside = dn - dp > margin + t
        maybe = dn - dp > margin - t
    return negs[inside], negs[maybe]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ["semi-hard", "easy"])
@pytest.mark.parametrize("squared", [False, True])
def test_band_closest_equals_oracle(kind: str, strategy: str, squared: bool, dtype: type) -> None:
    x, labels = data(kind, dtype, seed=7)
    d = oracle_distances(x)
    tol = tolerance(dtype, d)
    margin = 0.5 if strategy == "semi-hard" else 1.0
    result = mine(x, labels, MineSpec(strategy, margin=margin, positives="all", squared=squared))
    check_items_valid(result, labels, d, tol)
    found = {(a, p): n for a, p, n in triplets_of(result)}
    assert len(found) == result.count  # one negative per (a, p)
    none = 0
    for a in range(len(labels)):
        for p in positives_of(labels, a):
            inside, maybe = band_oracle(d, labels, a, p, strategy, margin, tol, squared)
            if len(inside):
                assert (a, p) in found
            if not len(maybe):
                assert (a, p) not in found
            if (a, p) in found:
                n = found[(a, p)]
                assert n in maybe
                if len(inside):
                    assert d[a, n] <= d[a, inside].min() + 2 * tol  # the closest in the band
            else:
                none += 1
    assert result.slots_with_none == none
    assert result.slots == sum(len(positives_of(labels, a)) for a in range(len(labels)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ["semi-hard", "easy"])
def test_band_all_equals_oracle(kind: str, strategy: str, dtype: type) -> None:
    x, labels = data(kind, dtype, rows=80, seed=11)
    d = oracle_distances(x)
    tol = tolerance(dtype, d)
    margin = 0.7 if strategy == "semi-hard" else 2.0
    result = mine(x, labels, MineSpec(strategy, margin=margin, positives="all", select="all"))
    check_items_valid(result, labels, d, tol)
    got = triplets_of(result)
    assert len(got) == result.count
    must, may = set(), set()
    for a in range(len(labels)):
        for p in positives_of(labels, a):
            inside, maybe = band_oracle(d, labels, a, p, strategy, margin, tol)
            must |= {(a, int(p), int(n)) for n in inside}
            may |= {(a, int(p), int(n)) for n in maybe}
    assert must <= got <= may
    assert len(must) > 100  # the test exercises something


def test_semi_hard_select_all_grows_buffers() -> None:
    """More than one tile's initial buffer (4 096 items) from a single tile."""
    x, labels = data("random", np.float64, rows=200, classes=2, seed=2)
    d = oracle_distances(x)
    result = mine(x, labels, MineSpec("easy", margin=0.0, positives="all", select="all"))
    expected = sum(int((d[a, negatives_of(labels, a)] > d[a, p]).sum())
                   for a in range(200) for p in positives_of(labels, a))
    assert result.count == expected > 4096


@pytest.mark.parametrize("kind", KINDS)
def test_tf_addons_fallback_equals_its_definition(kind: str, dtype: type) -> None:
    """TF-Addons triplet_semihard_loss: min d_an over d_an > d_ap (no upper bound), else the max d_an."""
    x, labels = data(kind, dtype, seed=13)
    d = oracle_distances(x)
    tol = tolerance(dtype, d)
    result = mine(x, labels, MineSpec("semi-hard", margin=0.1, positives="all", fallback="tf-addons"))
    found = {(a, p): n for a, p, n in triplets_of(result)}
    fallbacks = 0
    for a in range(len(labels)):
        negs = negatives_of(labels, a)
        for p in positives_of(labels, a):
            n = found[(a, int(p))]
            outside = negs[d[a, negs] > d[a, p]]
            if len(outside):
                assert d[a, n] == pytest.approx(d[a, outside].min(), abs=2 * tol)
            else:
                fallbacks += 1
                assert d[a, n] == pytest.approx(d[a, negs].max(), abs=2 * tol)
    assert result.fallback_items == fallbacks
    assert result.count == result.slots  # every (a, p) gets a negative


def test_hardest_fallback_takes_the_nearest_negative() -> None:
    x, labels = data("clustered", np.float64, seed=17)
    d = oracle_distances(x)
    plain = mine(x, labels, MineSpec("semi-hard", margin=0.05, positives="all"))
    result = mine(x, labels, MineSpec("semi-hard", margin=0.05, positives="all", fallback="hardest"))
    assert plain.slots_with_none > 0
    assert result.fallback_items == plain.slots_with_none
    assert result.count == result.slots
    banded = triplets_of(plain)
    for a, p, n in triplets_of(result) - banded:
        assert d[a, n] == pytest.approx(d[a, negatives_of(labels, a)].min())


# -- within-margin ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_within_margin_equals_oracle(kind: str, metric: str, dtype: type) -> None:
    x, labels = data(kind, dtype, seed=19)
    d = oracle_distances(x, metric)
    tol = tolerance(dtype, d)
    margin = float(np.quantile(d[labels[:, None] != labels[None, :]], 0.1))
    result = mine(x, labels, MineSpec("within-margin", margin=margin, metric=metric))
    check_items_valid(result, labels, d, tol)
    got = set(zip(result.items["i"].tolist(), result.items["j"].tolist()))
    upper = np.triu(labels[:, None] != labels[None, :], 1)
    must = set(zip(*np.nonzero(upper & (d < margin - tol))))
    may = set(zip(*np.nonzero(upper & (d < margin + tol))))
    assert must <= got <= may and len(must) > 50
    touched = np.zeros(len(labels), bool)
    touched[result.items["i"]] = touched[result.items["j"]] = True
    assert result.anchors_with_none == int((~touched).sum())


@pytest.mark.parametrize("strategy", ["hard", "semi-hard"])
def test_cosine_metric_equals_oracle(strategy: str, dtype: type) -> None:
    x, labels = data("clustered", dtype, seed=23)
    x[5] = 0.0  # a zero row: cosine 0 with everything, distance 1
    d = oracle_distances(x, "cosine")
    tol = tolerance(dtype, d)
    result = mine(x, labels, MineSpec(strategy, margin=0.2, positives="nearest", metric="cosine"))
    check_items_valid(result, labels, d, tol)
    for a, p, n in triplets_of(result):
        if strategy == "hard":
            assert d[a, n] <= d[a, negatives_of(labels, a)].min() + tol
        else:
            assert d[a, p] - tol < d[a, n] <= d[a, p] + 0.2 + tol


# -- duplicates, batches, blocks --------------------------------------------------------------------


def test_duplicate_rows_are_handled_by_id() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 6))
    x = np.concatenate([base, base[:10]])  # rows 30..39 duplicate rows 0..9
    labels = np.concatenate([rng.integers(0, 3, 30), np.full(10, 7)])  # duplicates carry another label
    result = mine(x, labels, MineSpec("hard", positives="nearest"))
    it = result.items
    assert (it["anchor"] != it["positive"]).all()
    for a in range(10):
        rows = it["anchor"] == a
        assert it["negative"][rows].tolist() == [30 + a]  # its twin, at distance 0
        assert it["d_an"][rows].tolist() == [0.0]
    same = np.concatenate([base, base])  # same label twins: nearest positive is the twin
    twin_labels = np.concatenate([np.arange(30) % 3, np.arange(30) % 3])
    res = mine(same, twin_labels, MineSpec("hard", positives="nearest"))
    assert (res.items["positive"][:30] == np.arange(30) + 30).all()
    assert (res.items["d_ap"] == 0).all()


def test_batches_equal_exact_mining_inside_each_batch() -> None:
    x, labels = data("clustered", np.float64, rows=150, seed=29)
    size = 40
    result = mine(x, labels, MineSpec("hard", batch_size=size, seed=3, positives="nearest"))
    order = np.random.default_rng(3).permutation(len(labels))  # documented: a permutation drawn with seed
    batch_of = np.empty(len(labels), int)
    for b, start in enumerate(range(0, len(labels), size)):
        batch_of[order[start:start + size]] = b
    assert result.batches == 4
    it = result.items
    d = oracle_distances(x)
    anchors = 0
    for a in range(len(labels)):
        mates = np.flatnonzero(batch_of == batch_of[a])
        pos = mates[(labels[mates] == labels[a]) & (mates != a)]
        neg = mates[labels[mates] != labels[a]]
        rows = it["anchor"] == a
        if len(pos) == 0 or len(neg) == 0:
            assert not rows.any()
            continue
        anchors += 1
        assert d[a, it["positive"][rows][0]] == pytest.approx(d[a, pos].min())
        assert d[a, it["negative"][rows][0]] == pytest.approx(d[a, neg].min())
    assert result.count == anchors


def test_batch_of_whole_set_equals_exact() -> None:
    x, labels = data("random", np.float32, seed=31)
    exact = mine(x, labels, MineSpec("semi-hard", positives="nearest", margin=0.5))
    batched = mine(x, labels, MineSpec("semi-hard", positives="nearest", margin=0.5, batch_size=len(labels)))
    assert triplets_of(exact) == triplets_of(batched)


def test_tiles_of_any_shape_give_the_same_answer() -> None:
    x, labels = data("clustered", np.float32, rows=203, seed=37)
    prep = prepare(x, "euclidean")
    anchors = np.arange(203)
    whole = blocked.nearest_negatives(prep, labels, anchors, 3)
    odd = blocked.nearest_negatives(prep, labels, anchors, 3, tile_rows=7, tile_cols=13)
    np.testing.assert_array_equal(whole[1], odd[1])
    a = np.repeat(anchors, 2)
    low = np.tile([1.0, 4.0], 203)
    slots, _ = make_slots(prep, a, np.sqrt(low), np.sqrt(low + 6.0))  # bands in distances
    np.testing.assert_array_equal(blocked.band_closest(prep, labels, slots)[1],
                                  blocked.band_closest(prep, labels, slots, tile_rows=5, tile_cols=17)[1])
    full = blocked.pairs_below(prep, labels, np.sqrt(20.0), max_items=10**6)
    small = blocked.pairs_below(prep, labels, np.sqrt(20.0), max_items=10**6, tile_rows=9, tile_cols=11)
    for u, v in zip(full, small):
        np.testing.assert_array_equal(u, v)


def test_tiles_fit_the_budget() -> None:
    prep = prepare(np.zeros((100_000, 8), np.float32), "euclidean")
    rows, cols = tile_shape(prep.x.itemsize, len(prep.x), budget_mib=0.5, rows=blocked.TILE_ROWS)
    assert rows * cols * 4 <= 0.5 * 2**20
    assert tile_shape(prep.x.itemsize, len(prep.x), budget_mib=1e-9, rows=blocked.TILE_ROWS) == (blocked.TILE_ROWS, 1)


def test_exact_recall_check_is_one() -> None:
    x, labels = data("random", np.float32, seed=41)
    result = mine(x, labels, MineSpec("hard", negatives=2, check_recall=50))
    assert result.recall == 1.0 and result.recall_anchors == 50


# -- errors ----------------------------------------------------------------------------------------


def test_one_label_is_an_error() -> None:
    with pytest.raises(InputError, match="one label"):
        mine(np.zeros((5, 2)), np.zeros(5, int), MineSpec("hard"))


def test_no_positives_is_an_error() -> None:
    with pytest.raises(InputError, match="needs positives"):
        mine(np.eye(4), np.arange(4), MineSpec("semi-hard"))
    # within-margin needs no positives
    assert mine(np.eye(4), np.arange(4), MineSpec("within-margin", margin=2.0)).count == 6


def test_label_length_mismatch() -> None:
    with pytest.raises(InputError, match="labels has 3 rows but embeddings has 4"):
        mine(np.eye(4), np.zeros(3, int), MineSpec("hard"))


@pytest.mark.parametrize("spec, message", [
    (MineSpec("semi-hard", index="hnsw"), "per-anchor threshold"),
    (MineSpec("hard", select="all"), "--select applies"),
    (MineSpec("batch-hard", positives="nearest"), "farthest positive"),
    (MineSpec("within-margin", positives="all"), "does not apply"),
    (MineSpec("semi-hard", negatives=2), "--negatives applies"),
    (MineSpec("hard", fallback="hardest"), "--fallback applies"),
    (MineSpec("semi-hard", squared=True, metric="cosine"), "--squared"),
    (MineSpec("hard", batch_size=1), "--batch-size"),
    (MineSpec("hard", index="ivf", batch_size=8), "does not combine"),
    (MineSpec("semi-hard", check_recall=5), "--check-recall"),
    (MineSpec("hard", margin=-1.0), "--margin"),
    (MineSpec("hard", positives="nearest", positives_count=2), "--positives-count"),
])
def test_option_errors(spec: MineSpec, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        spec.validated()


def test_too_many_items_is_an_error() -> None:
    x, labels = data("random", np.float64, rows=60, seed=43)
    with pytest.raises(OptionError, match="more than 10 items"):
        mine(x, labels, MineSpec("within-margin", margin=100.0, max_items=10))
    with pytest.raises(OptionError, match="more than 10 items"):
        mine(x, labels, MineSpec("easy", margin=0.0, select="all", max_items=10))


# -- invariants (hypothesis) ----------------------------------------------------------------------

matrices = st.integers(min_value=0, max_value=2**31 - 1).map(lambda s: np.random.default_rng(s))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=matrices, rows=st.integers(4, 40), classes=st.integers(2, 5),
       margin=st.floats(0.01, 3.0), strategy=st.sampled_from(["semi-hard", "easy", "hard", "batch-hard"]),
       select=st.sampled_from(["closest", "all"]))
def test_triplets_satisfy_their_definition(rng: np.random.Generator, rows: int, classes: int, margin: float,
                                           strategy: str, select: str) -> None:
    x = rng.standard_normal((rows, 3))
    labels = np.concatenate([[0, 0, 1], rng.integers(0, classes, rows - 3)])
    select = select if strategy in ("semi-hard", "easy") else "closest"
    it = mine(x, labels, MineSpec(strategy, margin=margin, positives="all" if strategy != "batch-hard" else None,
                                  select=select)).items
    a, p, n = it["anchor"], it["positive"], it["negative"]
    assert (labels[a] == labels[p]).all() and (a != p).all()
    assert (labels[a] != labels[n]).all()  # negatives are never same-label
    tol = 1e-9
    if strategy == "semi-hard":
        assert (it["d_an"] > it["d_ap"] - tol).all() and (it["d_an"] <= it["d_ap"] + margin + tol).all()
    if strategy == "easy":
        assert (it["d_an"] - it["d_ap"] > margin - tol).all()


@settings(max_examples=25, deadline=None)
@given(rng=matrices, rows=st.integers(2, 40), margin=st.floats(0.0, 4.0))
def test_within_margin_pairs_are_negative_and_inside(rng: np.random.Generator, rows: int, margin: float) -> None:
    x = rng.standard_normal((rows, 3))
    labels = np.concatenate([[0, 1], rng.integers(0, 3, rows - 2)])
    it = mine(x, labels, MineSpec("within-margin", margin=margin)).items
    assert (labels[it["i"]] != labels[it["j"]]).all()
    assert (it["i"] < it["j"]).all()
    assert (it["d"] < margin + 1e-9).all()
    # permuting rows permutes the answer
    perm = rng.permutation(rows)
    again = mine(x[perm], labels[perm], MineSpec("within-margin", margin=margin)).items
    mapped = {tuple(sorted((int(perm[i]), int(perm[j])))) for i, j in zip(again["i"], again["j"])}
    assert mapped == set(zip(it["i"].tolist(), it["j"].tolist()))


@pytest.mark.parametrize("offset", [3.0, 20.0])
def test_exact_mining_is_exact_on_rows_sharing_a_large_offset(offset: float) -> None:
    """float32 rows far from the origin: the kernels work on centred tiles, so the nearest
    negative and the semi-hard band match a float64 brute force."""
    from embedkit.mining.strategies import MineSpec, mine

    rng = np.random.default_rng(21)
    x = (offset + 0.05 * rng.standard_normal((600, 64))).astype(np.float32)
    labels = rng.integers(0, 5, 600)
    x64 = x.astype(np.float64)
    dist = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    hard = mine(x, labels, MineSpec("hard", index="exact", positives="nearest"))
    negatives = np.where(labels[:, None] != labels[None, :], dist, np.inf)
    best = negatives.min(axis=1)
    got = dist[hard.items["anchor"], hard.items["negative"]]
    np.testing.assert_allclose(got, best[hard.items["anchor"]], rtol=1e-5)
    semi = mine(x, labels, MineSpec("semi-hard", margin=0.2, index="exact"))
    gap = semi.items["d_an"] - semi.items["d_ap"]
    assert (gap > -1e-5).all() and (gap <= 0.2 + 1e-5).all()
