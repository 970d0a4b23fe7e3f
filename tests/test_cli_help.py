"""Help that reads at 80 columns: panels, metavars, nothing cut, examples that parse.

Iterates over the commands registered in the Typer app, so a new command is covered."""

from __future__ import annotations

import shlex

import pytest
import typer.main
from embedkit.cli.main import app
from typer.testing import CliRunner

PANELS = {"Input", "Labels", "Retrieval (qrels)", "Loss", "Strategy", "Filters", "Search", "Output", "Performance"}
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout


def own_options(name: str) -> list:
    return [p for p in GROUP.commands[name].params  # type: ignore[attr-defined]
            if p.param_type_name == "option" and p.name != "help"]


def test_every_command_is_covered() -> None:
    assert {"loss", "mine", "eval", "check", "inspect", "env"} <= set(COMMANDS)


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_at_80_columns_is_not_cut(name: str) -> None:
    text = help_text(*([name] if name else []))
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for line in text.splitlines():
        assert "<bool>" not in line or "--help" in line, line  # flags carry no metavar (Typer's own --help aside)
        assert "<str>" not in line or " EMB " in line, line  # options say FILE, NAME, ... (Typer labels arguments)


@pytest.mark.parametrize("name", COMMANDS)
def test_options_sit_in_the_shared_panels(name: str) -> None:
    options = own_options(name)
    panels = {getattr(p, "rich_help_panel", None) for p in options}
    assert panels <= PANELS, panels - PANELS
    text = help_text(name)
    shown = [line for line in text.splitlines() if line.startswith("╭─ ")]
    for panel in panels:
        assert any(f"╭─ {panel} " in line for line in shown), (panel, shown)
    assert len([p for p in shown if p[3:].split(" ─")[0] in PANELS]) >= min(3, len(panels)), shown


@pytest.mark.parametrize("name", COMMANDS)
def test_metavars_say_what_goes_there(name: str) -> None:
    for param in own_options(name):
        if param.is_flag:
            assert param.metavar == "", (param.name, param.metavar)
        else:
            assert param.metavar and param.metavar.upper() == param.metavar, (param.name, param.metavar)


def examples(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    found: list[str] = []
    continued = False
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if continued:  # the previous line ended with a backslash: one shell command
            found[-1] = found[-1][:-1] + " " + line.strip()
        else:
            assert line.strip().startswith("embedkit "), f"not one example per line: {line!r}"
            found.append(line.strip())
        continued = found[-1].endswith("\\")
    return found


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_every_help_example_parses(name: str) -> None:
    text = help_text(*([name] if name else []))
    found = examples(text)
    assert found, text
    for example in found:
        for part in example.split(" | "):
            words = shlex.split(part)  # unbalanced quotes fail here
            assert words[0] == "embedkit", example
            # As a shell reads it: an unquoted > or < would redirect (`-r precision_at_1>=0.9` makes a file '=0.9').
            lexer = shlex.shlex(part, posix=True, punctuation_chars=True)
            operators = [t for t in lexer if t and set(t) <= set("();<>|&")]
            assert operators == [], f"unquoted shell operator in: {example}"
            if len(words) < 2 or words[1] not in GROUP.commands:  # type: ignore[attr-defined]
                continue
            command = GROUP.commands[words[1]]  # type: ignore[attr-defined]
            with command.make_context(words[1], words[2:]) as ctx:  # a usage error raises here
                assert set(ctx.params) >= {p.name for p in command.params if p.name != "help"}, example
