#!/usr/bin/env python3
"""ExecuTorch (XNNPACK) and LiteRT against ONNX Runtime and OpenVINO on this CPU, per zoo model and precision.

For each ``--models`` entry and ``--precisions`` (fp32, int8): ``edgekit.export`` to the four targets (defaults:
rewrites on, the parity gate on the bundled photographs; int8 calibrated on the bundled generated images), then,
at each ``--threads`` count, the four bundles timed in one process by edgekit's timing harness
(edgekit/engines/timing.py: run by run in alternation on the same photograph, ONNX Runtime timed twice as the A/A
control). Prints one table: median ms, ONNX Runtime / runtime ratio with its 95% bootstrap interval, the gate's
worst-image cosine, and ExecuTorch's delegated share of the FLOPs.

    python scripts/bench_mobile.py --models efficientvit_b0,segformer_b0
    python scripts/bench_mobile.py --models efficientvit_b0,efficientvit_b0_seg,segformer_b0,fastvit_t8,repvit_m1_1 \\
        --threads 1,2 --rounds 20 --doc docs/benchmarks.md --block mobile
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402

TARGETS = ("onnx", "openvino", "executorch", "litert")
NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO", "executorch": "ExecuTorch (XNNPACK)", "litert": "LiteRT"}


def export_all(model: str, precision: str, out: Path) -> dict:
    import edgekit

    return {t: edgekit.export(model, t, out / f"{model}-{precision}-{t}", precision=precision, calib_size=16,
                              verify=False) for t in TARGETS}


def rows_for(model: str, precision: str, bundles: dict, threads: list[int], rounds: int) -> list[str]:
    import edgekit
    from edgekit.calib import load_image_sets
    from edgekit.engines.timing import compare, interleave
    from edgekit.preprocess import Preprocess

    first = bundles["onnx"].manifest
    x = load_image_sets(None, Preprocess.from_dict(first.preprocess), 1, int8=False).parity.inputs[0]
    lines = []
    for n in threads:
        runners = {NAMES[t]: edgekit.runtime.load(b.path, threads=n) for t, b in bundles.items()}
        try:
            samples = interleave({name: (lambda r=r: r.outputs(x)) for name, r in runners.items()},
                                 baseline=NAMES["onnx"], rounds=rounds, warmup=3, settle=1)
        finally:
            for r in runners.values():
                r.close()
        result = compare(samples, NAMES["onnx"])
        for row in result.rows:
            target = next(t for t, name in NAMES.items() if name == row.name)
            m = bundles[target].manifest
            parity = m["parity"]
            gate = f"{parity['cosine_min']:.6f} {'pass' if parity.get('passed') else 'FAIL'}"
            share = (m.get("export") or {}).get("delegation", {}).get("flops", {}).get("share")
            lines.append(f"| {model} | {precision} | {n} | {row.name} | {row.median_ms:.2f} | "
                         f"{'baseline' if row.ratio is None else row.ratio.cell()} | {gate} | "
                         f"{'' if share is None else f'{share * 100:.1f}%'} |")
        lines.append(f"| | | {n} | A/A control | | {result.noise.text()} | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="efficientvit_b0,segformer_b0")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=15)
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    lines = ["| model | precision | threads | runtime | median ms | ONNX Runtime / runtime [95% CI] | "
             "gate cosine min | ExecuTorch FLOPs delegated |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for precision in args.precisions.split(","):
                bundles = export_all(model, precision, Path(tmp))
                lines += rows_for(model, precision, bundles, threads, args.rounds)
                print("\n".join(lines[-(len(threads) * 5):]), flush=True)
    body = "\n".join(lines + ["", f"Median wall ms of one inference on the same photograph, the four runtimes timed "
                                  f"in alternation in one process ({args.rounds} rounds); {load_avg()}.", "",
                              environment(("torch", "onnxruntime", "openvino", "executorch", "litert"),
                                          threads="threads per row")])
    print(body)
    _docblock.maybe_write(args, body)


if __name__ == "__main__":
    main()
