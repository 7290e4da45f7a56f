#!/usr/bin/env python3
"""The cost of a shape envelope: a bundle exported for a range of sizes (``--dynamic-hw``) against a bundle fixed at
its OPT size, on ONNX Runtime and OpenVINO, timed at OPT.

For each ``--models`` entry and runtime: ``edgekit.export`` twice (fixed, and with the planner's envelope; both with
the parity gate), then the two bundles timed in one process by edgekit's timing harness (edgekit/engines/timing.py:
run by run in alternation on the same photograph, the fixed bundle timed twice as the A/A control). Prints one
table: median ms, fixed / dynamic ratio with its 95% bootstrap interval (>= 0.95x is the goal), and the envelope.

    python scripts/bench_shapes.py --models efficientvit_b0_seg,segformer_b0,swin_tiny --threads 1 \\
        --doc docs/benchmarks.md --block shapes
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402

TARGETS = ("onnx", "openvino")
NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO"}


def rows_for(model: str, target: str, out: Path, threads: int, rounds: int) -> list[str]:
    import edgekit
    from edgekit.calib import load_image_sets
    from edgekit.engines.timing import compare, interleave
    from edgekit.preprocess import Preprocess
    from edgekit.shapes import fmt

    fixed = edgekit.export(model, target, out / f"{model}-{target}-fixed")
    dynamic = edgekit.export(model, target, out / f"{model}-{target}-dynamic", dynamic_hw=True)
    x = load_image_sets(None, Preprocess.from_dict(fixed.manifest.preprocess), 1).parity.inputs[0]
    runners = {"fixed": edgekit.runtime.load(fixed.path, threads=threads),
               "dynamic": edgekit.runtime.load(dynamic.path, threads=threads)}
    try:
        samples = interleave({name: (lambda r=r: r.outputs(x)) for name, r in runners.items()}, baseline="fixed",
                             rounds=rounds, warmup=3, settle=1)
    finally:
        for r in runners.values():
            r.close()
    result = compare(samples, "fixed")
    shapes = dynamic.manifest["shapes"]
    envelope = f"{fmt(shapes['min'][2:])} .. {fmt(shapes['max'][2:])}"
    lines = []
    for row in result.rows:
        ratio = "baseline" if row.ratio is None else row.ratio.cell()
        lines.append(f"| {model} | {NAMES[target]} | {row.name} | {fmt(fixed.manifest['inputs'][0]['shape'][2:])} "
                     f"| {'' if row.name == 'fixed' else envelope} | {row.median_ms:.2f} | {ratio} |")
    lines.append(f"| | {NAMES[target]} | A/A control | | | | {result.noise.text()} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="efficientvit_b0_seg,swin_tiny")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    lines = ["| model | runtime | bundle | timed at | envelope | median ms | fixed / bundle [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for target in args.targets.split(","):
                lines += rows_for(model, target, Path(tmp), args.threads, args.rounds)
                print("\n".join(lines[-3:]), flush=True)
    body = "\n".join(lines + ["", f"Median wall ms of one inference at the OPT size, the fixed and the dynamic bundle "
                                  f"timed in alternation in one process ({args.rounds} rounds, {args.threads} "
                                  f"thread(s)); {load_avg()}.", "",
                              environment(("torch", "onnxruntime", "openvino"), threads=f"{args.threads} thread(s)")])
    print(body)
    _docblock.maybe_write(args, body)


if __name__ == "__main__":
    main()
