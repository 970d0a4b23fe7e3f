"""The command line, importable as ``embedkit.cli``.

Its sources are the repository's top-level ``cli/`` folder (the thin Typer app over this
library). The wheel installs that folder here, as ``embedkit/cli``, so no top-level package
named ``cli`` lands in site-packages; in a source checkout this file points the package at
``cli/`` instead, and the same modules load under the same names.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[2] / "cli")]
