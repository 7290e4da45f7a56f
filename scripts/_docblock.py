"""Generated blocks in the benchmark docs: every measured figure in docs/benchmarks.md, docs/rewrites.md and
docs/quantization.md sits between two markers, written by the script that measured it::

    <!-- generated: NAME by `python scripts/bench_x.py ...` on 2026-12-07 -->
    ...the script's table, its "Measured on <CPU> ..." line, the A/A noise floor...
    <!-- end generated: NAME -->

A script run with ``--doc FILE --block NAME`` replaces that block (or appends it at the end of FILE), leaving
the rest of the file untouched. Prose outside the blocks may cite a generated figure; tests/test_doc_figures.py
fails on any figure outside a block that no block of the same file holds.
"""
from __future__ import annotations

import datetime
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"<!-- generated: (?P<name>[\w.-]+) by `(?P<command>[^`]+)` on (?P<date>\d{4}-\d{2}-\d{2}) -->")


def end_marker(name: str) -> str:
    return f"<!-- end generated: {name} -->"


@dataclass(frozen=True)
class Block:
    name: str
    command: str
    date: str
    body: str
    start: int  # offsets of the whole block (markers included) in the file's text
    end: int


def blocks(text: str) -> list[Block]:
    """The generated blocks of a document, in order; a begin marker without its end marker raises ValueError."""
    found = []
    for m in BEGIN.finditer(text):
        close = end_marker(m["name"])
        stop = text.find(close, m.end())
        if stop < 0:
            raise ValueError(f"generated block {m['name']!r} has no {close!r}")
        found.append(Block(m["name"], m["command"], m["date"], text[m.end():stop], m.start(), stop + len(close)))
    return found


def command_line() -> str:
    """How this script was run, as a command a reader can paste (repository-relative script path)."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return " ".join(["python", str(script), *(shlex.quote(a) for a in sys.argv[1:] if a)])


def write(doc: Path, name: str, body: str, command: str | None = None, date: str | None = None) -> None:
    """Replace block ``name`` of ``doc`` with ``body`` (append it when the file has no such block)."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"block name {name!r}: letters, digits, '_', '.', '-' only")
    command = command or command_line()
    date = date or datetime.date.today().isoformat()
    text = doc.read_text() if doc.exists() else ""
    new = f"<!-- generated: {name} by `{command}` on {date} -->\n{body.strip()}\n{end_marker(name)}"
    old = [b for b in blocks(text) if b.name == name]
    if len(old) > 1:
        raise ValueError(f"{doc} has {len(old)} blocks named {name!r}")
    if old:
        text = text[:old[0].start] + new + text[old[0].end:]
    else:
        text = text.rstrip() + ("\n\n" if text.strip() else "") + new + "\n"
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(doc)


def add_arguments(parser) -> None:
    """``--doc FILE --block NAME``: write the printed table into that generated block."""
    parser.add_argument("--doc", type=Path, default=None, help="write the table into a generated block of this "
                                                              "markdown file (scripts/_docblock.py)")
    parser.add_argument("--block", default=None, help="the block's name (with --doc)")


def maybe_write(args, body: str) -> None:
    if args.doc is None:
        return
    if not args.block:
        raise SystemExit("--doc needs --block NAME")
    write(args.doc, args.block, body)
    print(f"wrote block {args.block!r} of {args.doc}", file=sys.stderr)
