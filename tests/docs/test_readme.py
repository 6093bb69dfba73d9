"""Docs are tests: every Python block in README.md runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md[block {index}]", "exec"), {})


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


def test_readme_loss_table_lists_every_registered_loss():
    from deepmetric._registry import LOSSES

    table = README.read_text().split("## Losses", 1)[1].split("## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert listed == set(LOSSES.names())
