"""docs/pytorch_to_jax.md: every Python block runs, top to bottom, in one namespace."""

import pathlib
import re

from conftest import ROOT

MAP = ROOT / "docs" / "pytorch_to_jax.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_every_jax_snippet_of_the_map_runs(tmp_path, monkeypatch):
    blocks = python_blocks(MAP.read_text())
    assert len(blocks) >= 25
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{MAP.name}, block {number}", "exec"), namespace)


def test_every_snippet_of_the_nnx_column_runs_in_a_block():
    text = MAP.read_text()
    code = "\n".join(python_blocks(text))
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ") and line.count("|") == 4]
    header, body = rows[0], rows[1:]
    assert [cell.strip() for cell in header] == ["the course (PyTorch)", "Flax Linen (jaxdl's core)", "Flax NNX"]
    assert len(body) >= 10
    for row in body:
        for snippet in re.findall(r"`([^`]+)`", row[-1]):
            assert snippet.replace("@", "") in code, snippet


def test_the_map_follows_the_course_order():
    headings = re.findall(r"^## (.*)$", MAP.read_text(), flags=re.M)
    assert [h.split(" ·")[0] for h in headings] == ["00", "01", "02", "03", "Lesson 15"]


def test_blocks_are_found():
    assert python_blocks("a\n```python\nx = 1\n```\n```text\ny\n```\n") == ["x = 1\n"]
