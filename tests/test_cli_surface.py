"""What the command line says it used (labels, engine, files written), -q, --plot formats,
and options that do not apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLE, SEED

FACES = str(SEED / "faces.npy")
PAIRS = str(SEED / "pairs.csv")

HUMAN = {
    "loss": ["loss", "--pairs", PAIRS, FACES],
    "eval": ["eval", FACES],
    "check": ["check", FACES, "-r", "rows>=1"],
    "inspect": ["inspect", FACES],
    "mine": ["mine", FACES, "-s", "hard"],
}


@pytest.mark.parametrize("name", list(HUMAN))
def test_every_command_says_which_labels_it_used(run_cli, name: str) -> None:
    result = run_cli(*HUMAN[name])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("labels")]
    assert lines, result.stdout
    assert "faces.labels.txt" in lines[0], lines
    if name != "inspect":
        assert "2 classes" in lines[0], lines
    else:
        assert "2 classes" in lines[0].replace(":", ","), lines


def test_labels_line_names_a_parquet_column(run_cli) -> None:
    result = run_cli("eval", str(SEED / "faces.parquet"))
    assert result.exit_code == 0, result.stderr
    assert "faces.parquet column 'label', 2 classes" in result.stdout, result.stdout


@pytest.mark.parametrize("name", ["loss", "eval", "mine"])
def test_the_engine_is_named(run_cli, name: str) -> None:
    result = run_cli(*HUMAN[name], "--workers", "1")
    assert result.exit_code == 0, result.stderr
    assert "engine" in result.stdout and "local, 1 thread" in result.stdout, result.stdout


@pytest.mark.parametrize("command", ["loss", "mine"])
def test_a_line_for_every_file_written_and_quiet_silences_it(run_cli, tmp_path: Path, command: str) -> None:
    out = tmp_path / "items.parquet"
    args = [*HUMAN[command], "-o", str(out)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip().splitlines() == [f"wrote {out} (4 rows)"], result.stderr
    out.unlink()
    quiet = run_cli(*args, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    assert out.exists()


@pytest.mark.parametrize("command", ["loss", "mine"])
def test_quiet_with_items_on_stdout_prints_only_the_items(run_cli, command: str) -> None:
    result = run_cli(*HUMAN[command], "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith('"'), result.stdout  # the CSV header, nothing else


def test_junit_and_plot_lines(run_cli, tmp_path: Path) -> None:
    junit = tmp_path / "r.xml"
    result = run_cli("check", FACES, "-r", "rows>=1", "-r", "dim==2", "--junit", str(junit))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"wrote {junit} (2 test cases)"
    plot = tmp_path / "p.svg"
    result = run_cli("inspect", FACES, "--plot", str(plot))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"plot {plot}"


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF"),
                                          (".PNG", b"\x89PNG")])
def test_plot_format_follows_the_extension(run_cli, tmp_path: Path, suffix: str, magic: bytes) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / f"p{suffix}"
    result = run_cli("inspect", FACES, "--plot", str(plot), "-q")
    assert result.exit_code == 0, result.stderr
    assert plot.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["p.jpg", "p", "p.png.txt"])
def test_plot_refuses_other_formats_before_the_work(run_cli, tmp_path: Path, name: str) -> None:
    result = run_cli("inspect", FACES, "--plot", str(tmp_path / name))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --plot") and "use .png, .svg or .pdf" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_sample_sidecar_is_named(run_cli) -> None:
    result = run_cli("check", str(SAMPLE / "emb.npy"), "-r", "nan_rows==0")
    assert "labels: emb.labels.npy, 40 classes" in result.stdout.replace(str(SAMPLE) + "/", ""), result.stdout


@pytest.mark.parametrize("args,fragment", [
    (["-s", "hard", "--margin", "0.3"], "--margin does not apply to the hard strategy"),
    (["-s", "batch-hard", "-m", "0.3"], "--margin does not apply to the batch-hard strategy"),
    (["-s", "hard", "--index", "exact", "--nprobe", "4"], "--nprobe does not apply to --index exact"),
    (["-s", "hard", "--index", "hnsw", "--nlist", "4"], "--nlist does not apply to --index hnsw"),
    (["-s", "hard", "--index", "ivf", "--ef-search", "4"], "--ef-search does not apply to --index ivf"),
])
def test_mine_refuses_options_that_do_not_apply(run_cli, args: list[str], fragment: str) -> None:
    result = run_cli("mine", FACES, *args)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.strip() == f"error: {fragment}", result.stderr


def test_mine_accepts_margin_given_at_its_default_for_band_strategies(run_cli) -> None:
    result = run_cli("mine", FACES, "-s", "semi-hard", "--margin", "1.0", "--json")
    assert result.exit_code == 0, result.stderr


def short_options() -> dict[str, set[str]]:
    """Every short option of every registered command -> the long options it stands for."""
    import typer.main
    from embedkit.cli.main import app

    group = typer.main.get_command(app)
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            opts = [*param.opts, *getattr(param, "secondary_opts", [])]
            longs = [o for o in opts if o.startswith("--")]
            for short in (o for o in opts if o.startswith("-") and not o.startswith("--")):
                found.setdefault(short, set()).update(longs or [f"{name}:{param.name}"])
    return found


# -k is "K, how many per query/anchor" everywhere: eval's --k and mine's --negatives (README, short options).
SAME_MEANING = {"-k": {"--k", "--negatives"}}


def test_one_meaning_per_short_option_across_commands() -> None:
    found = short_options()
    assert {"-k", "-m", "-o", "-q", "-l", "-s", "-r", "-t"} <= set(found), found
    ambiguous = {short: longs for short, longs in found.items()
                 if len(longs) != 1 and not longs <= SAME_MEANING.get(short, set())}
    assert ambiguous == {}, ambiguous


def test_k_is_the_count_k_and_r_is_require() -> None:
    found = short_options()
    assert found["-r"] == {"--require"}
    assert found["-q"] == {"--quiet"} and found["-o"] == {"--output"}


def test_loss_scores_mined_parquet_triplets_in_the_form_they_were_mined(run_cli, tmp_path: Path) -> None:
    emb = str(SAMPLE / "emb.npy")
    mined = tmp_path / "t.parquet"
    assert run_cli("mine", emb, "-s", "semi-hard", "-m", "0.5", "-o", str(mined), "-q").exit_code == 0
    result = run_cli("loss", "--kind", "triplet", "--margin", "0.5", "--triplets", str(mined), emb, "--json")
    assert result.exit_code == 0, result.stderr
    import json

    payload = json.loads(result.stdout)
    assert payload["params"]["squared"] is False
    assert result.stderr.startswith("note: triplet form unsquared"), result.stderr
    # Given explicitly, the user's form wins and nothing is said.
    explicit = run_cli("loss", "--kind", "triplet", "--squared", "--triplets", str(mined), emb, "--json")
    assert json.loads(explicit.stdout)["params"]["squared"] is True and explicit.stderr == ""


def test_loss_says_when_mined_csv_triplets_may_disagree(run_cli, tmp_path: Path) -> None:
    emb = str(SAMPLE / "emb.npy")
    mined = tmp_path / "t.csv"
    assert run_cli("mine", emb, "-s", "semi-hard", "-o", str(mined), "-q").exit_code == 0
    result = run_cli("loss", "--kind", "triplet", "--triplets", str(mined), emb, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("note: triplets with d_ap/d_an columns") and "--no-squared" in result.stderr
    quiet = run_cli("loss", "--kind", "triplet", "--triplets", str(mined), emb, "--json", "-q")
    assert quiet.stderr == ""


@pytest.mark.parametrize("args,fragment", [
    (["-r", "nan_rows==0", "--margin", "0.5"], "--margin does not apply to these requirements (no loss figure)"),
    (["-r", "rows>=1", "-t", "0.1", "--form", "halved"],
     "--temperature, --form do not apply to these requirements (no loss figure)"),
    (["-r", "nan_rows==0", "--metric", "cosine"], "--metric does not apply to these requirements (no eval or IR figure)"),
    (["-r", "precision_at_1>=0", "--sample", "10"], "--sample does not apply to these requirements (no distance figure)"),
])
def test_check_refuses_options_its_requirements_do_not_read(run_cli, args: list[str], fragment: str) -> None:
    result = run_cli("check", FACES, *args)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.strip() == f"error: {fragment}", result.stderr


def test_check_accepts_the_options_its_requirements_read(run_cli) -> None:
    result = run_cli("check", FACES, "-r", "contrastive_loss<=10", "-m", "0.5", "-r", "precision_at_1>=0",
                     "--metric", "cosine", "-r", "overlap<=1", "--sample", "10", "--json")
    assert result.exit_code == 0, result.stderr

