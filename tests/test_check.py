"""check: requirement grammar, figures, baselines, exit codes and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedkit.checks import (
    CheckSettings,
    figure_names,
    figure_source,
    parse_max_drop,
    parse_requirement,
    run_check,
)
from embedkit.dataset import Dataset, LoadedEmbeddings
from embedkit.errors import EmbedkitError, OptionError
from embedkit.losses.compute import LossSpec, compute_loss
from embedkit.metrics import retrieval_metrics
from tests.conftest import SAMPLE, clustered

EMB = SAMPLE / "emb.npy"


def loaded(x, labels):
    return LoadedEmbeddings(Dataset(x, "test", labels=labels), 0, 0, np.ones(len(x), bool))


@pytest.mark.parametrize("text, name, op, value", [
    ("precision_at_1>=0.9", "precision_at_1", ">=", 0.9),
    ("  map_at_r <  0.5 ", "map_at_r", "<", 0.5),
    ("nan_rows==0", "nan_rows", "==", 0.0),
    ("recall_at_25>0.99", "recall_at_25", ">", 0.99),
    ("contrastive_loss<=2e-1", "contrastive_loss", "<=", 0.2),
    ("positive_distance_p95<=-1", "positive_distance_p95", "<=", -1.0),
])
def test_parse_requirement(text, name, op, value):
    r = parse_requirement(text)
    assert (r.name, r.op, r.value) == (name, op, value)


@pytest.mark.parametrize("text, fragment", [
    ("precision_at_1>>0.9", "malformed requirement"),
    ("precision_at_1 0.9", "malformed requirement"),
    ("precision_at_1=0.9", "malformed requirement"),
    ("precision_at_1>=", "malformed requirement"),
    (">=0.9", "malformed requirement"),
    ("precision_at_1>=abc", "is not a number"),
    ("precision_at_1>=nan", "finite number"),
    ("precision_at_1>=inf", "finite number"),
    ("precison_at_1>=0.9", "did you mean precision_at_1"),
    ("recall_at_0>=0.9", "unknown figure"),
])
def test_malformed_requirements_name_the_text_and_the_grammar(text, fragment):
    with pytest.raises(OptionError) as info:
        parse_requirement(text)
    message = str(info.value)
    assert fragment in message and repr(text) in message
    if "malformed" in fragment:
        assert "NAME OP VALUE" in message


@given(st.text(max_size=40))
def test_parser_never_raises_anything_but_an_embedkit_error(text):
    try:
        r = parse_requirement(text)
    except EmbedkitError:
        return
    assert figure_source(r.name) in ("eval", "inspect", "loss") and np.isfinite(r.value)


@given(name=st.sampled_from([n for n in figure_names() if n != "recall_at_K"] + ["recall_at_7"]),
       op=st.sampled_from([">=", "<=", ">", "<", "=="]),
       value=st.floats(allow_nan=False, allow_infinity=False, width=32), spaces=st.text(" ", max_size=2))
def test_parser_round_trips_every_figure(name, op, value, spaces):
    r = parse_requirement(f"{spaces}{name}{spaces}{op}{spaces}{value!r}{spaces}")
    assert (r.name, r.op, r.value) == (name, op, value)


def test_max_drop_parsing():
    assert parse_max_drop("precision_at_1=0.01").drop == 0.01
    for bad in ("precision_at_1", "precision_at_1=-1", "rows=1", "x=1", "precision_at_1=nan"):
        with pytest.raises(OptionError):
            parse_max_drop(bad)


def test_requirements_evaluate_against_the_library_figures():
    x, labels = clustered(80, 6, 4, seed=2, spread=1.0)
    p1 = retrieval_metrics(x, labels, ks=(3,)).figures
    loss = compute_loss(Dataset(x, "t", labels=labels), LossSpec(kind="contrastive", margin=0.5)).loss
    reqs = tuple(parse_requirement(t) for t in (
        f"precision_at_1>={p1['precision_at_1']}", f"precision_at_1>{p1['precision_at_1']}",
        f"recall_at_3=={p1['recall_at_3']}", "contrastive_loss<=1000", "rows==80", "dim<6"))
    report = run_check(loaded(x, labels), reqs, settings=CheckSettings(loss=LossSpec(kind="contrastive", margin=0.5)))
    assert [o.passed for o in report.outcomes] == [True, False, True, True, True, False]
    assert report.outcomes[3].value == pytest.approx(loss)
    assert not report.passed and [o.text for o in report.failed] == [reqs[1].text, reqs[5].text]


def test_only_needed_figures_are_computed(monkeypatch):
    import embedkit.losses.compute
    import embedkit.metrics

    def boom(*args, **kwargs):
        raise AssertionError("should not run")

    # checks imports them at the call (faiss and numba load only when an eval or loss figure is asked)
    monkeypatch.setattr(embedkit.metrics, "evaluate_retrieval", boom)
    monkeypatch.setattr(embedkit.losses.compute, "compute_loss", boom)
    x, labels = clustered(20, 3, 2, seed=0)
    report = run_check(loaded(x, labels), (parse_requirement("nan_rows==0"), parse_requirement("rows>1")))
    assert report.passed


def test_baseline_drop_directions():
    x, labels = clustered(60, 6, 4, seed=3, spread=0.8)
    worse = x + np.random.default_rng(0).normal(0, 1.5, x.shape).astype(x.dtype)
    drops = (parse_max_drop("precision_at_1=0.0"), parse_max_drop("contrastive_loss=0"))
    report = run_check(loaded(worse, labels), (), baseline=loaded(x, labels), max_drops=drops)
    p1, loss = report.outcomes
    assert p1.value < p1.baseline and not p1.passed  # it got worse: fails
    assert loss.value > loss.baseline and not loss.passed  # a loss that went up is a drop too
    relaxed = run_check(loaded(worse, labels), (), baseline=loaded(x, labels),
                        max_drops=(parse_max_drop("precision_at_1=1"),))
    assert relaxed.passed
    same = run_check(loaded(x, labels), (), baseline=loaded(x, labels), max_drops=drops)
    assert same.passed


def test_nonfinite_rows_fail_eval_figures_instead_of_erroring():
    x, labels = clustered(20, 3, 2, seed=0)
    x[0, 0] = np.nan
    finite = np.isfinite(x).all(axis=1)
    got = LoadedEmbeddings(Dataset(x, "t", labels=labels), 1, 0, finite)
    report = run_check(got, (parse_requirement("nan_rows==0"), parse_requirement("precision_at_1>=0")))
    assert [o.passed for o in report.outcomes] == [False, False]
    assert "NaN" in report.outcomes[1].reason


# -- CLI --------------------------------------------------------------------------------

def test_cli_pass_exit_0(run_cli):
    r = run_cli("check", EMB, "--require", "precision_at_1>=0.8", "--require", "nan_rows==0")
    assert r.exit_code == 0, r.stderr
    assert "pass" in r.stdout and "2 of 2 hold" in r.stdout and r.stderr == ""


def test_cli_fail_exit_1_names_the_failure(run_cli):
    r = run_cli("check", EMB, "-r", "precision_at_1>=0.99", "-r", "duplicate_rows==0")
    assert r.exit_code == 1
    assert "FAIL" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("check failed: 1 of 2: precision_at_1>=0.99 (0.90425)")


def test_cli_malformed_exit_2(run_cli):
    r = run_cli("check", EMB, "--require", "precision_at_1=>0.9")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --require 'precision_at_1=>0.9': malformed requirement; expected NAME OP VALUE")
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_cli_bad_input_exit_2(run_cli, tmp_path):
    assert run_cli("check", tmp_path / "missing.npy", "-r", "rows>0").exit_code == 2
    np.save(tmp_path / "nolabels.npy", np.eye(3, dtype=np.float32))
    r = run_cli("check", tmp_path / "nolabels.npy", "-r", "precision_at_1>0")
    assert r.exit_code == 2 and "needs labels" in r.stderr
    assert run_cli("check", EMB).exit_code == 2  # nothing to check


def test_cli_json_values(run_cli):
    r = run_cli("check", EMB, "-r", "map_at_r>0.5", "-r", "contrastive_loss<=0.2", "--margin", "0.5", "--json")
    assert r.exit_code == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["passed"] is True and payload["failed"] == []
    first, second = payload["requirements"]
    assert first["figure"] == "map_at_r" and first["value"] == pytest.approx(0.6864666, abs=1e-6)
    assert second["source"] == "loss"


def test_cli_loss_options_apply(run_cli):
    values = [json.loads(run_cli("check", EMB, "-r", "contrastive_loss>=0", "--margin", m, "--json").stdout)
              ["requirements"][0]["value"] for m in ("0.5", "1.5")]
    assert values[0] < values[1]  # a larger margin keeps more negatives inside it


def test_non_finite_rows_fail_check_with_exit_1_not_2(run_cli, tmp_path):
    x, labels = clustered(30, 4, 3, seed=1)
    x[4, 2] = np.nan
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "e.labels.npy", labels)
    r = run_cli("check", tmp_path / "e.npy", "-r", "nan_rows==0")
    assert r.exit_code == 1 and "nan_rows==0 (1)" in r.stderr
    assert run_cli("loss", tmp_path / "e.npy").exit_code == 2  # loss itself refuses such input


def test_cli_baseline(run_cli, tmp_path):
    x = np.load(EMB)
    noisy = x + np.random.default_rng(0).normal(0, 0.08, x.shape).astype(np.float32)
    np.save(tmp_path / "new.npy", noisy)
    r = run_cli("check", tmp_path / "new.npy", "--labels", SAMPLE / "emb.labels.npy", "--baseline", EMB,
                "--max-drop", "precision_at_1=0.001", "--json")
    assert r.exit_code == 1
    outcome = json.loads(r.stdout)["requirements"][0]
    assert outcome["baseline"] == pytest.approx(0.90425) and outcome["value"] < outcome["baseline"] - 0.001
    ok = run_cli("check", tmp_path / "new.npy", "--labels", SAMPLE / "emb.labels.npy", "--baseline", EMB,
                 "--max-drop", "precision_at_1=0.5")
    assert ok.exit_code == 0, ok.stderr
    np.save(tmp_path / "short.npy", x[:100])
    short = run_cli("check", EMB, "--baseline", tmp_path / "short.npy", "--max-drop", "precision_at_1=0.01")
    assert short.exit_code == 2 and "same rows" in short.stderr


def test_cli_junit_parses(run_cli, tmp_path):
    out = tmp_path / "report.xml"
    r = run_cli("check", EMB, "-r", "precision_at_1>=0.99", "-r", "rows==4000", "-r", "norm_max<=1.001",
                "--junit", out)
    assert r.exit_code == 1
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["precision_at_1>=0.99", "rows==4000", "norm_max<=1.001"]
    failure = cases[0].find("failure")
    assert failure is not None and "precision_at_1 = 0.90425" in failure.get("message")
    assert cases[1].find("failure") is None
    assert not list(tmp_path.glob(".*partial"))


def test_cli_junit_refuses_an_input_path(run_cli, tmp_path):
    x = np.eye(3, dtype=np.float32)
    np.save(tmp_path / "e.npy", x)
    r = run_cli("check", tmp_path / "e.npy", "-r", "rows==3", "--junit", tmp_path / "e.npy")
    assert r.exit_code == 2 and "also an input" in r.stderr
    assert np.array_equal(np.load(tmp_path / "e.npy"), x)


def test_cli_stdin_with_nan_rows(run_cli):
    import io

    x = np.eye(4, dtype=np.float32)
    x[2, 0] = np.inf
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = run_cli("check", "-r", "inf_rows==1", "-r", "rows==4", "--json", input=buffer.getvalue())
    assert r.exit_code == 0, r.stderr
    assert [o["value"] for o in json.loads(r.stdout)["requirements"]] == [1, 4]


def test_cli_stdin_finite(run_cli):
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.load(EMB))
    r = run_cli("check", "--labels", SAMPLE / "emb.labels.npy", "-r", "precision_at_1>=0.9", "-r", "nan_rows==0",
                input=buffer.getvalue())
    assert r.exit_code == 0, r.stderr
