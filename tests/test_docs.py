"""The project's own documentation agrees with the project: its module table and its
one-line description."""

import re
from pathlib import Path

import pytest

import daskgmm

ROOT = Path(__file__).resolve().parents[1]


def _module_table():
    """The first column of every row of README's module table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Modules", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE)


def test_module_table_lists_every_module_and_folder_once():
    listed = _module_table()
    assert len(listed) == len(set(listed)), sorted(name for name in listed
                                                   if listed.count(name) > 1)
    modules = {f"daskgmm/{path.name}" for path in (ROOT / "daskgmm").glob("*.py")
               if path.name != "__init__.py"}
    assert modules <= set(listed), sorted(modules - set(listed))
    for folder in ("cluster_configs/", "benchmarks/", "examples/"):
        assert folder in listed and (ROOT / folder).is_dir(), folder


@pytest.mark.parametrize("description", [
    "pyproject",
    "package docstring",
])
def test_description_says_one_pass_per_iteration(description):
    """Not "single-pass EM": EM makes one pass over the data per iteration."""
    tomllib = pytest.importorskip("tomllib")
    text = {
        "pyproject": lambda: tomllib.loads((ROOT / "pyproject.toml").read_text())[
            "project"]["description"],
        "package docstring": lambda: daskgmm.__doc__,
    }[description]()
    assert "single-pass" not in text.lower() and "single pass" not in text.lower()
    assert re.search(r"one pass .*per (EM )?iteration", " ".join(text.split()))
