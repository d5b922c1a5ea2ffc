"""Every Python example in README.md and docs/*.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page, index, block) for page in PAGES
          for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL))]


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS,
                         ids=[f"{page.relative_to(ROOT)}-{index}" for page, index, _ in BLOCKS])
def test_documented_python_example_runs(page: Path, index: int, block: str, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(block, f"{page.name} python block {index}", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # each example prints what it shows


def test_readme_and_api_guide_have_examples() -> None:
    assert sum(page.name == "README.md" for page, _, _ in BLOCKS) >= 2
    assert sum(page.name == "python-api.md" for page, _, _ in BLOCKS) >= 5
