"""Degenerate but valid data: every command gives the defined answer the README's
"Degenerate data" table documents (issue 5). Six rows × 3 unless the case says otherwise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

RNG_ROWS = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
TWO_CLASSES = [0, 0, 0, 1, 1, 1]

CASES: dict[str, tuple[np.ndarray, list[int]]] = {
    "one_class": (RNG_ROWS, [0] * 6),
    "class_of_one": (RNG_ROWS, [0, 0, 0, 1, 1, 2]),
    "all_singletons": (RNG_ROWS, [0, 1, 2, 3, 4, 5]),
    "identical": (np.tile(np.float32([[1, 2, 3]]), (6, 1)), TWO_CLASSES),
    "zero_rows": (np.where(np.isin(np.arange(6), [0, 3])[:, None], 0, RNG_ROWS).astype(np.float32), TWO_CLASSES),
    "all_zero": (np.zeros((6, 3), np.float32), TWO_CLASSES),
    "float16": (RNG_ROWS.astype(np.float16), TWO_CLASSES),
    "float16_as_32": (RNG_ROWS.astype(np.float16).astype(np.float32), TWO_CLASSES),
    "one_row": (RNG_ROWS[:1], [0]),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("degenerate")
    out = {}
    for name, (x, labels) in CASES.items():
        np.save(folder / f"{name}.npy", x)
        np.save(folder / f"{name}.labels.npy", np.asarray(labels, np.int64))
        out[name] = folder / f"{name}.npy"
    return out


def run_json(run_cli, *args):
    """``(exit code, JSON payload or None, stderr)``."""
    result = run_cli(*args, "--json")
    assert "Traceback" not in result.stderr
    payload = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, payload, result.stderr


def refused(run_cli, fragment: str, *args) -> None:
    code, payload, err = run_json(run_cli, *args)
    lines = err.strip().splitlines()
    assert code == 2 and payload is None, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def pairwise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


LOG2, LOG4, LOG5 = math.log(2), math.log(4), math.log(5)


# -- loss ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case,kind,count,active,value", [
    # One class: every pair is similar, no triplet, no negative.
    ("one_class", "triplet", 0, 0, 0.0),
    ("one_class", "infonce", 30, 0, 0.0),       # no negative: -log(e^s / e^s) = 0 for each of 6·5 ordered pairs
    # A class of one: its row is never an anchor, only a negative.
    ("class_of_one", "triplet", 26, None, None),  # 3·2·3 + 2·1·4
    ("class_of_one", "infonce", 8, None, None),   # 3·2 + 2·1 ordered positive pairs
    ("class_of_one", "supcon", 5, None, None),    # the anchors with a positive
    ("class_of_one", "npair", 2, None, None),     # the classes with two rows
    ("all_singletons", "triplet", 0, 0, 0.0),
    ("all_singletons", "infonce", 0, 0, 0.0),
    ("all_singletons", "supcon", 0, 0, 0.0),
    # All rows identical: every distance 0, every cosine 1.
    ("identical", "contrastive", 15, 9, 9 / 15),  # the 9 negative pairs cost margin² = 1, the positives 0
    ("identical", "triplet", 36, 36, 1.0),        # every triplet costs the margin
    ("identical", "infonce", 12, 12, LOG4),       # e^s / (e^s + 3 e^s)
    ("identical", "supcon", 6, 6, LOG5),          # e^s / (5 e^s) for each of 2 positives
    ("identical", "bce", 15, 15, LOG2),           # z = 10·1 − 10 = 0
    ("identical", "npair", 2, 2, LOG2),
    # All rows zero: a zero row has cosine 0 with every row (as in mine and eval).
    ("all_zero", "infonce", 12, 12, LOG4),
    ("all_zero", "supcon", 6, 6, LOG5),
    ("all_zero", "bce", 15, 15, (6 * math.log1p(math.exp(10)) + 9 * math.log1p(math.exp(-10))) / 15),
    ("all_zero", "npair", 2, 2, LOG2),            # raw dot products, all 0
    # One row: no pair, no triplet.
    ("one_row", "contrastive", 0, 0, 0.0),
    ("one_row", "triplet", 0, 0, 0.0),
    ("one_row", "infonce", 0, 0, 0.0),
    ("one_row", "supcon", 0, 0, 0.0),
    ("one_row", "bce", 0, 0, 0.0),
])
def test_loss(run_cli, files, case, kind, count, active, value):
    code, payload, err = run_json(run_cli, "loss", "--kind", kind, files[case])
    assert code == 0, err
    assert payload["count"] == count
    if active is not None:
        assert payload["active"] == active
    if value is not None:
        assert payload["loss"] == pytest.approx(value, rel=1e-6, abs=1e-12)
    assert math.isfinite(payload["loss"])


def test_loss_without_items_says_so(run_cli, files):
    result = run_cli("loss", "--kind", "triplet", files["one_class"])
    assert result.exit_code == 0 and "No triplets: the loss is 0 by definition." in result.stdout


def test_loss_on_one_class_is_the_mean_squared_distance(run_cli, files):
    code, payload, _ = run_json(run_cli, "loss", "--kind", "contrastive", files["one_class"])
    d = pairwise(RNG_ROWS)[np.triu_indices(6, 1)]
    assert code == 0 and payload["count"] == 15 and payload["loss"] == pytest.approx((d**2).mean(), rel=1e-5)


@pytest.mark.parametrize("case", ["one_class", "all_singletons", "one_row"])
def test_npair_needs_two_classes_with_a_pair(run_cli, files, case):
    refused(run_cli, "npair loss needs pairs from at least 2 classes", "loss", "--kind", "npair", files[case])


@pytest.mark.parametrize("kind", ["infonce", "supcon", "bce", "npair", "contrastive", "triplet"])
def test_losses_on_zero_rows_are_finite(run_cli, files, kind):
    code, payload, err = run_json(run_cli, "loss", "--kind", kind, files["zero_rows"])
    assert code == 0, err
    assert math.isfinite(payload["loss"]) and payload["count"] > 0


@pytest.mark.parametrize("kind", ["contrastive", "triplet", "infonce", "supcon", "bce", "npair"])
def test_float16_is_computed_as_its_float32_upcast(run_cli, files, kind):
    half = run_json(run_cli, "loss", "--kind", kind, files["float16"])[1]
    single = run_json(run_cli, "loss", "--kind", kind, files["float16_as_32"])[1]
    assert half["embeddings"]["dtype"] == "float16"
    assert (half["count"], half["active"]) == (single["count"], single["active"])
    assert half["loss"] == pytest.approx(single["loss"], rel=1e-6)


# -- mine ------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["hard", "semi-hard", "batch-hard", "easy", "within-margin"])
def test_mine_one_class_has_no_negatives(run_cli, files, strategy):
    refused(run_cli, "all 6 rows have one label; mining needs at least two labels (negatives)",
            "mine", "--strategy", strategy, files["one_class"])
    refused(run_cli, "mining needs at least two labels (negatives)", "mine", "--strategy", strategy, files["one_row"])


@pytest.mark.parametrize("strategy", ["hard", "semi-hard", "batch-hard", "easy"])
def test_mine_without_any_positive_is_refused(run_cli, files, strategy):
    refused(run_cli, f"no label has two or more rows (6 labels, 6 rows); {strategy} needs positives",
            "mine", "--strategy", strategy, files["all_singletons"])


def test_mine_within_margin_needs_no_positive(run_cli, files):
    code, payload, err = run_json(run_cli, "mine", "--strategy", "within-margin", files["all_singletons"])
    d = pairwise(RNG_ROWS)[np.triu_indices(6, 1)]
    assert code == 0, err
    assert payload["items"] == int((d < 1.0).sum()) == 2


@pytest.mark.parametrize("strategy,items", [("hard", 5), ("batch-hard", 5)])
def test_mine_class_of_one_is_a_negative_never_an_anchor(run_cli, files, strategy, items):
    code, payload, err = run_json(run_cli, "mine", "--strategy", strategy, files["class_of_one"])
    assert code == 0, err
    assert (payload["anchors"], payload["anchors_without_positive"], payload["items"]) == (5, 1, items)


@pytest.mark.parametrize("strategy,items,with_none", [
    ("hard", 6, 0),           # the nearest negative, at distance 0
    ("batch-hard", 6, 0),
    ("semi-hard", 0, 6),      # d_ap = d_an = 0: no negative with d_ap < d_an
    ("easy", 0, 6),           # no negative with d_an − d_ap > margin
    ("within-margin", 9, 0),  # every negative pair, d = 0 < margin
])
def test_mine_identical_rows(run_cli, files, strategy, items, with_none):
    code, payload, err = run_json(run_cli, "mine", "--strategy", strategy, files["identical"])
    assert code == 0, err
    assert (payload["items"], payload["anchors_with_none"]) == (items, with_none)
    for column in payload["distances"].values():
        assert column["max"] == 0.0


@pytest.mark.parametrize("margin,items", [("1.0", 0), ("1.5", 9)])
def test_mine_zero_rows_with_cosine_are_at_distance_one(run_cli, files, margin, items):
    """A zero row has cosine 0 with every row: cosine distance 1, never NaN."""
    code, payload, err = run_json(run_cli, "mine", "--strategy", "within-margin", "--metric", "cosine",
                                  "--margin", margin, files["all_zero"])
    assert code == 0, err
    assert payload["items"] == items
    if items:
        assert payload["distances"]["d"]["min"] == payload["distances"]["d"]["max"] == 1.0


@pytest.mark.parametrize("strategy", ["hard", "semi-hard", "batch-hard", "easy"])
def test_mine_zero_rows_with_cosine_are_finite(run_cli, files, strategy):
    code, payload, err = run_json(run_cli, "mine", "--strategy", strategy, "--metric", "cosine", files["zero_rows"])
    assert code == 0, err
    for column in payload["distances"].values():
        if payload["items"]:
            assert all(math.isfinite(v) for v in column.values())


@pytest.mark.parametrize("strategy", ["hard", "semi-hard", "batch-hard", "easy", "within-margin"])
def test_mine_float16_equals_its_float32_upcast(run_cli, files, tmp_path, strategy):
    outputs = []
    for case in ("float16", "float16_as_32"):
        out = tmp_path / f"{case}.csv"
        code, payload, err = run_json(run_cli, "mine", "--strategy", strategy, files[case], "-o", out)
        assert code == 0, err
        outputs.append((payload["items"], out.read_text()))
    assert outputs[0] == outputs[1]


# -- eval ------------------------------------------------------------------------------------

FIGURES = ("precision_at_1", "r_precision", "map_at_r")


def test_eval_one_class_is_perfect(run_cli, files):
    code, payload, err = run_json(run_cli, "eval", files["one_class"])
    assert code == 0, err
    assert [payload[f] for f in FIGURES] == [1.0, 1.0, 1.0]
    assert payload["recall_at_k"] == {"1": 1.0, "5": 1.0, "10": 1.0}
    assert (payload["evaluated"], payload["lone_queries"], payload["search_k"]) == (6, 0, 5)


def test_eval_class_of_one_is_a_lone_query(run_cli, files):
    code, payload, err = run_json(run_cli, "eval", files["class_of_one"])
    assert code == 0, err
    assert (payload["evaluated"], payload["lone_queries"]) == (5, 1)


@pytest.mark.parametrize("case", ["all_singletons", "one_row"])
def test_eval_without_any_relevant_row_is_refused(run_cli, files, case):
    refused(run_cli, "no query has another reference row with its label", "eval", files[case])


@pytest.mark.parametrize("case,metric", [("identical", "euclidean"), ("identical", "cosine"),
                                         ("all_zero", "euclidean"), ("all_zero", "cosine")])
def test_eval_all_ties_rank_by_row_id(run_cli, files, case, metric):
    """Every distance ties, so neighbours come in row order: queries 0-2 (label 0) find their
    class first (1.0), queries 3-5 find rows 0-2 first (0.0)."""
    code, payload, err = run_json(run_cli, "eval", "--metric", metric, files[case])
    assert code == 0, err
    assert [payload[f] for f in FIGURES] == [0.5, 0.5, 0.5]
    assert payload["recall_at_k"] == {"1": 0.5, "5": 1.0, "10": 1.0}


def test_eval_zero_rows_with_cosine_are_finite(run_cli, files):
    code, payload, err = run_json(run_cli, "eval", "--metric", "cosine", files["zero_rows"])
    assert code == 0, err
    assert all(0.0 <= payload[f] <= 1.0 for f in FIGURES)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_eval_float16_equals_its_float32_upcast(run_cli, files, metric):
    half = run_json(run_cli, "eval", "--metric", metric, files["float16"])[1]
    single = run_json(run_cli, "eval", "--metric", metric, files["float16_as_32"])[1]
    assert half["figures"] == single["figures"]


# -- inspect ---------------------------------------------------------------------------------

def inspect_figures(run_cli, path: Path, *args):
    code, payload, err = run_json(run_cli, "inspect", path, *args)
    assert code == 0, err
    return payload


@pytest.mark.parametrize("case,classes,singletons,positive,negative", [
    ("one_class", 1, 0, 15, 0),
    ("all_singletons", 6, 6, 0, 15),
    ("one_row", 1, 1, 0, 0),
])
def test_inspect_without_both_kinds_of_pair_has_no_distances(run_cli, files, case, classes, singletons, positive,
                                                              negative):
    payload = inspect_figures(run_cli, files[case])
    f = payload["figures"]
    assert (f["classes"], f["singleton_classes"], f["positive_pairs"], f["negative_pairs"]) == (
        classes, singletons, positive, negative)
    assert payload["distances"] is None and "suggested_margin" not in f
    assert "pair distances need at least one positive and one negative pair" in payload["notes"]


@pytest.mark.parametrize("case,zero_rows", [("identical", 0), ("all_zero", 6)])
def test_inspect_identical_rows_suggest_no_margin(run_cli, files, case, zero_rows):
    payload = inspect_figures(run_cli, files[case])
    f = payload["figures"]
    assert (f["duplicate_rows"], f["zero_rows"], f["overlap"], f["ranking_error"]) == (5, zero_rows, 1.0, 0.5)
    margin = payload["distances"]["margin"]
    assert f["suggested_margin"] is None and margin["suggested"] is None and margin["candidates"] == []
    assert "no margin separates the kinds" in margin["reasoning"][0]


def test_inspect_identical_rows_text_and_plot(run_cli, files, tmp_path):
    result = run_cli("inspect", files["identical"])
    assert result.exit_code == 0 and "Suggested margin: none" in result.stdout
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    assert run_cli("inspect", files["identical"], "--plot", out).exit_code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_inspect_zero_rows_are_counted(run_cli, files):
    f = inspect_figures(run_cli, files["zero_rows"])["figures"]
    assert (f["zero_rows"], f["duplicate_rows"], f["norm_min"]) == (2, 1, 0.0)
    assert math.isfinite(f["suggested_margin"])


def test_inspect_float16_equals_its_float32_upcast(run_cli, files):
    half = inspect_figures(run_cli, files["float16"])
    single = inspect_figures(run_cli, files["float16_as_32"])
    assert half["dtype"] == "float16"
    for name, value in single["figures"].items():
        assert half["figures"][name] == pytest.approx(value, rel=1e-6), name


# -- check -----------------------------------------------------------------------------------

def test_check_on_one_row(run_cli, files):
    code, payload, _ = run_json(run_cli, "check", files["one_row"], "-r", "rows==1", "-r", "classes==1")
    assert code == 0 and payload["passed"]
    code, payload, _ = run_json(run_cli, "check", files["one_row"], "-r", "suggested_margin>=0")
    assert code == 1 and payload["requirements"][0]["value"] is None
    refused(run_cli, "no query has another reference row", "check", files["one_row"], "-r", "precision_at_1>=0")


def test_check_on_identical_rows(run_cli, files):
    code, payload, _ = run_json(run_cli, "check", files["identical"], "-r", "suggested_margin>0",
                                "-r", "duplicate_rows==5", "-r", "precision_at_1==0.5")
    assert code == 1
    margin, duplicates, p1 = payload["requirements"]
    assert margin["value"] is None and "no margin separates the kinds" in margin["reason"]
    assert duplicates["passed"] and p1["passed"]


def test_check_on_one_class(run_cli, files):
    code, payload, _ = run_json(run_cli, "check", files["one_class"], "-r", "precision_at_1==1",
                                "-r", "triplet_loss==0", "-r", "negative_pairs==0")
    assert code == 0, payload
    code, payload, _ = run_json(run_cli, "check", files["one_class"], "-r", "overlap<=1")
    assert code == 1 and "need a positive and a negative pair" in payload["requirements"][0]["reason"]


def test_margin_reasoning_does_not_call_touching_kinds_separated():
    """Positives all at 0 and a negative at 0 too (duplicate rows across labels): m = 0 counts
    that negative neither inside nor beyond, but the kinds touch, they are not separated."""
    from embedkit.pair_distances import suggest_margin

    touching = suggest_margin(np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    assert (touching.margin, touching.negatives_inside, touching.positives_beyond) == (0.0, 0.0, 0.0)
    assert any("meet at D = 0" in line for line in touching.reasoning)
    assert not any("separated:" in line for line in touching.reasoning)
    apart = suggest_margin(np.array([0.1, 0.5]), np.array([2.0, 3.0]))
    assert any("the kinds are separated" in line for line in apart.reasoning)
