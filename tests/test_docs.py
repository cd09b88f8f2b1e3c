"""Documentation runs as written: every ```python block of README.md and docs/*.md.

Blocks of one page run in order in one namespace, inside a temporary directory.
Use ```text (or any other language tag) for snippets that are not meant to run.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(page):
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_page_runs_as_written(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    blocks = _blocks(page)
    for index, code in enumerate(blocks):
        exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
    assert blocks
