"""Every measured figure in the benchmark docs comes from a script: it sits inside a generated block
(scripts/_docblock.py: the command, the date, the CPU), or the prose around the blocks cites it and a block of
the same file holds it. A hand-typed figure, or one left from an older run, fails here."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import _docblock  # noqa: E402

DOCS = ["docs/benchmarks.md", "docs/rewrites.md", "docs/quantization.md", "docs/tune.md"]
# a figure: a decimal (1.56, 0.999), or a number with a unit of speed, time, share or size (2x, 87%, 12 ms,
# 0.3 pt); not a setting (2 threads, 128 images, opset 17), a shape (224x224, 1x3x64x64), a name (b0@256) or a
# tolerance written as a power of ten (1e-5)
FIGURE = re.compile(r"(?<![\w.@/-])(?:\d+\.\d+(?:\s?(?:x|%|ms|s|pt|points?|GFLOP/s|MB|minutes?))?(?![\w.])"
                    r"|\d+(?:x|%|\s?(?:ms|s|pt|points?|GFLOP/s|MB|minutes?))(?![\w.\d]))")
THRESHOLD = re.compile(r"(?:>=|<=|>|<|≥|≤|at least|at most|target|goal)\s*$")  # a goal or tolerance, not a figure
LEVEL = re.compile(r"\s*(?:bootstrap\s+|confidence\s+)*interval")  # "a 95% interval": a confidence level


def _outside(text: str, blocks: list) -> str:
    """The document without its generated blocks, code spans and fenced code (commands, not figures)."""
    for b in reversed(blocks):
        text = text[:b.start] + "\n" + text[b.end:]
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "``", text)


def figures_outside(text: str) -> list[str]:
    blocks = _docblock.blocks(text)
    held = "\n".join(b.body for b in blocks)
    missing = []
    for m in FIGURE.finditer(_outside(text, blocks)):
        before = m.string[max(0, m.start() - 12):m.start()]
        if THRESHOLD.search(before) or LEVEL.match(m.string, m.end()):
            continue
        figure = m.group(0)
        if not re.search(rf"(?<![\w.]){re.escape(figure)}(?![\w])", held):
            missing.append(figure)
    return missing


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_comes_from_a_generated_block(doc):
    text = (ROOT / doc).read_text()
    blocks = _docblock.blocks(text)
    for b in blocks:
        assert b.command.startswith("python scripts/"), (b.name, b.command)
        assert "Measured on " in b.body, f"block {b.name} of {doc} does not name the CPU it ran on"
    assert len({b.name for b in blocks}) == len(blocks), f"{doc}: two blocks share a name"
    missing = figures_outside(text)
    assert not missing, f"{doc}: figures outside generated blocks that no block holds: {missing}"


def test_the_checker_catches_a_typed_figure():
    block = ("<!-- generated: t by `python scripts/bench_x.py` on 2026-12-07 -->\nMeasured on X.\n"
             "| a | 1.56x | 87.8% |\n<!-- end generated: t -->\n")
    assert figures_outside(block + "The win is 1.56x, at 87.8% agreement.\n") == []
    assert figures_outside(block + "It ran 1.49x faster, 12 ms, 0.93 cosine.\n") == ["1.49x", "12 ms", "0.93"]
    assert figures_outside(block + "2 threads, 128 images, 224x224, b0@256, 1e-5, `--iters 20 1.7x`, >= 1.5x, "
                                   "a 95% bootstrap interval\n") == []


def test_write_replaces_only_its_block(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("# T\n\nprose\n")
    _docblock.write(doc, "a", "Measured on X.\n| 1 |", command="python scripts/x.py", date="2026-12-07")
    _docblock.write(doc, "b", "Measured on Y.\n| 2 |", command="python scripts/y.py", date="2026-12-07")
    _docblock.write(doc, "a", "Measured on Z.\n| 3 |", command="python scripts/x.py --n 2", date="2026-12-08")
    text = doc.read_text()
    [a, b] = _docblock.blocks(text)
    assert (a.name, a.command, a.date, a.body.strip()) == ("a", "python scripts/x.py --n 2", "2026-12-08",
                                                           "Measured on Z.\n| 3 |")
    assert b.body.strip() == "Measured on Y.\n| 2 |" and text.startswith("# T\n\nprose\n")
    with pytest.raises(ValueError, match="no"):
        _docblock.blocks("<!-- generated: c by `python scripts/z.py` on 2026-12-07 -->\nunclosed")
