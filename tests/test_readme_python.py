"""Every ```python block of the README runs as typed, from the repository root."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{code}\n--- stderr ---\n{done.stderr}"
    assert done.stdout.strip(), "the example printed nothing"


def test_public_api_names_resolve() -> None:
    import embedkit

    for name in embedkit.__all__:
        assert getattr(embedkit, name) is not None, name
    with pytest.raises(AttributeError):
        embedkit.no_such_name  # noqa: B018
