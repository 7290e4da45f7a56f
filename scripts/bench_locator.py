#!/usr/bin/env python3
"""What the divergence locator costs, and a real report for docs/debugging.md.

For each model (default: zoo Swin-T at 224 and SegFormer-B0 at 512): the fp32 ONNX of edgekit's ONNX Runtime
export, its fp16 conversion (edgekit's islands), then the locator run on the parity images exactly as a failing
gate runs it (every module tapped in both graphs, on ONNX Runtime), timed against the export itself. The
locator runs only when the gate fails, so a passing export never pays it; the table says what a failing one
adds. With ``--example DIR`` it also writes the report of tests/fixtures/diverge.py's overflowing model (fp16
constants beyond 65504 in its `rescale` module), the HTML page and its plot, into DIR.

    python scripts/bench_locator.py
    python scripts/bench_locator.py --example docs/images --doc docs/debugging.md --block locator-cost
"""
from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402


def measure(model: str, shape: str | None) -> str:
    import onnx

    import edgekit
    from edgekit.calib import load_image_sets
    from edgekit.config import Precision
    from edgekit.debug.locate import locate
    from edgekit.sources import load_source
    from edgekit.targets.onnxruntime.backend import to_fp16

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bundle = edgekit.export(model, "onnx", Path(tmp) / "b", input_shape=shape, calib_size=6)
        export_s = time.perf_counter() - t0
        fp32 = onnx.load(str(bundle.path / "model.onnx"))
    spec = load_source(model, None, tuple(bundle.manifest["inputs"][0]["shape"])).spec
    inputs = load_image_sets(None, spec.preprocess, 6).parity.inputs
    report = locate(fp32, to_fp16(fp32), Precision.FP16, "onnxruntime", {}, inputs)
    shape_text = "x".join(map(str, bundle.manifest["inputs"][0]["shape"]))
    return (f"| {model} | {shape_text} | {len(report.taps)} | {len(inputs)} | {export_s:.1f} | {report.seconds:.1f} | "
            f"{report.first.module if report.first else 'none'} |")


def example(out: Path) -> None:
    import edgekit
    from edgekit.errors import ParityError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            edgekit.export("tests.fixtures.diverge:overflowing", "onnx", Path(tmp) / "b", precision="fp16")
        except ParityError as e:
            print(f"error: {e}", file=sys.stderr)
        page = (Path(tmp) / "b.parity-report.html").read_text()
    out.mkdir(parents=True, exist_ok=True)
    start = page.index("base64,") + len("base64,")
    (out / "parity-report-error-by-module.png").write_bytes(base64.b64decode(page[start:page.index('"', start)]))
    print(f"wrote {out / 'parity-report-error-by-module.png'}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="swin_tiny,segformer_b0")
    ap.add_argument("--example", type=Path, default=None, help="write the example report's plot into this folder")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    if args.example is not None:
        example(args.example)
    rows = ["| model | input | modules tapped | images | export s (fp32, gate included) | locator s (fp16) | "
            "first divergence |", "|---|---|---|---|---|---|---|"]
    for model in args.models.split(","):
        rows.append(measure(model, None))
    body = "\n".join(rows + ["", f"One run each, wall seconds; {load_avg()}.", environment(threads="the runtime's default threads")])
    print(body)
    _docblock.maybe_write(args, body)


if __name__ == "__main__":
    main()
