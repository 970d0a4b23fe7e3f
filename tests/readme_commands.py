"""The shell commands of README.md that the README examples test runs, in README order.

From every ```bash and ```console block: lines starting with ``embedkit`` (maybe after
``NAME=value`` environment assignments; a console
block's ``$ `` prompt is dropped; ``cd sample_data &&`` is dropped, the commands run in a
copy of ``sample_data/``), and ``python -c`` / ``python3 -c`` lines, which make input files
the examples use (also ``mkdir -p DIR && python -c ...`` chains). Not run: other programs (pip, dask, benches) and commands that need a
Dask scheduler at ``tcp://`` (there is none in a test). A comment starting ``# exit N``
gives the documented exit code (default 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)\s*$")
# What a line (each part of an `a && b` chain) may be for the test to run it.
RUNNABLE = re.compile(r"^(?:(?:[A-Z_][A-Z0-9_]*=\S+\s+)*embedkit |python3? -c |mkdir -p )")
EXIT = re.compile(r"#\s*exit\s+(\d+)\b")


@dataclass(frozen=True)
class Example:
    line: int
    command: str
    exit_code: int

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.command}"


def readme_examples(path: Path = ROOT / "README.md") -> list[Example]:
    found: list[Example] = []
    language: str | None = None
    pending, first = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if pending:  # a shell line continued with a trailing backslash
            raw, number = pending + " " + raw.strip(), first
            pending = ""
        if raw.rstrip().endswith("\\") and language is not None:
            pending, first = raw.rstrip()[:-1].rstrip(), number
            continue
        fence = FENCE.match(raw.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in ("bash", "console", "sh", "shell"):
            continue
        text = raw.strip()
        if language == "console":
            if not text.startswith("$ "):
                continue  # output shown under the command
            text = text[2:]
        text = re.sub(r"^cd sample_data\s*&&\s*", "", text)
        if not all(RUNNABLE.match(part.strip()) for part in text.split("&&")):
            continue
        if "tcp://" in text:
            continue
        match = EXIT.search(text)
        found.append(Example(number, text, int(match.group(1)) if match else 0))
    return found


if __name__ == "__main__":
    for example in readme_examples():
        print(example)
