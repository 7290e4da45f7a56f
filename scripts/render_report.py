#!/usr/bin/env python3
"""Render an `edgekit profile --html` report in a real headless browser (Chromium): a screenshot to
look at, and the DOM as the browser built it, to check that the page and its inline SVG plots load.

    python scripts/render_report.py report.html --png report.png [--dom report.dom.html] [--width 1280]

Prints what it checked: the number of rendered <svg> plots, the page's sections, and the screenshot's
size. Exits 2 when Chromium is not installed (Debian: apt-get install chromium), 1 when the page
does not render.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def render(html: Path, png: Path | None, width: int = 1280, height: int | None = None) -> str:
    """Load ``html`` in headless Chromium; write a screenshot to ``png`` (full height when None is given
    for ``height``: estimated from the DOM); return the DOM the browser built."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    url = html.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile_dir:
        base = [browser, *FLAGS, f"--user-data-dir={profile_dir}"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        if png is not None:
            # headless screenshots are one viewport tall: size it to what is shown (closed <details> hide theirs)
            shown = dom.split("<details>")[0]
            height = height or max(1200, 700 + 400 * shown.count("<svg") + 24 * shown.count("<tr>")
                                   + 30 * dom.count("<details>"))
            subprocess.run([*base, f"--window-size={width},{height}", f"--screenshot={png.resolve()}", url],
                           capture_output=True, timeout=120, check=True)
    return dom


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path)
    ap.add_argument("--png", type=Path, default=None, help="write a screenshot here")
    ap.add_argument("--dom", type=Path, default=None, help="write the rendered DOM here")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=None)
    args = ap.parse_args()
    try:
        dom = render(args.html, args.png, args.width, args.height)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dom:
        args.dom.write_text(dom)
    svgs = dom.count("<svg")
    sections = re.findall(r"<h2>(.*?)</h2>", dom)
    print(f"rendered {args.html}: {svgs} inline SVG plots; sections: {', '.join(s.strip() for s in sections)}")
    if args.png:
        from PIL import Image

        with Image.open(args.png) as im:
            print(f"screenshot {args.png}: {im.size[0]}x{im.size[1]}")
    return 0 if svgs and sections else 1


if __name__ == "__main__":
    sys.exit(main())
