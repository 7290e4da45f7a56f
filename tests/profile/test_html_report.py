"""The HTML report stands alone (inline SVG, no scripts, nothing fetched) and renders in a real
headless browser: the DOM Chromium builds holds every plot, and the screenshot is a page, not a blank."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from tests.profile.conftest import FAST

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from render_report import find_browser  # noqa: E402


@pytest.fixture(scope="module")
def report_html(bundles, tmp_path_factory):
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib (pip install 'edgekit[report]')")
    path = tmp_path_factory.mktemp("html") / "report.html"
    edgekit.profile([bundles["onnx"], bundles["openvino"]], html=path, threads="1,2", **FAST)
    return path


def test_html_stands_alone(report_html):
    html = report_html.read_text()
    assert "<script" not in html
    # nothing is fetched: the only URLs are SVG/XML namespace names, never a src or href to load
    assert not re.search(r"""(src|href)=["'](https?:|file:|//)""", html)
    n_runs = 4
    # per run a top-layers plot, an op-type plot and a block plot; plus comparison, distribution, roofline
    assert html.count("<svg") == 3 * n_runs + 3
    assert html.count("<details") == n_runs
    for text in ("Latency", "Roofline", "Where the time goes", "backbone.attn", "onnxruntime profiling",
                 "openvino performance counters", "% of peak"):
        assert text in html, text


@pytest.mark.skipif(find_browser() is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium(report_html, tmp_path):
    png = tmp_path / "report.png"
    script = ROOT / "scripts" / "render_report.py"
    proc = subprocess.run([sys.executable, str(script), str(report_html), "--png", str(png), "--dom",
                           str(tmp_path / "dom.html")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "15 inline SVG plots" in proc.stdout and "Roofline" in proc.stdout
    dom = (tmp_path / "dom.html").read_text()
    assert dom.count("<svg") == 15 and 'id="plot-roofline"' in dom
    from PIL import Image

    with Image.open(png) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 1200
    # a rendered page has text, bars and white space: far from uniform
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01


def test_reports_without_layers_or_flops(report_html, bundles):
    """--no-layers and bundles without a FLOP count still give complete pages and tables."""
    from edgekit.profiling.html import render_html
    from edgekit.profiling.markdown import render_markdown

    data = edgekit.profile(bundles["onnx"], **dict(FAST, layer_iters=0)).data
    for run in data["results"][0]["runs"]:
        run["roofline"].update(flops=None, intensity=None, achieved_gflops=None, fraction_of_peak=None)
    html = render_html(data)
    assert "No per-layer profile" in html and "no FLOP count" in html and html.count("<svg") == 3
    assert "| tiny_classifier | onnx | fp32 |" in render_markdown(data)
