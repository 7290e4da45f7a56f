#!/usr/bin/env python3
"""Zoo benchmark: params, GMACs, and median latency (PyTorch eager, ONNX Runtime, OpenVINO; fp32; 1 and
2 threads) for every zoo model at its default resolution, and achieved GFLOP/s as a fraction of this
CPU's fp32 peak on two cores (a 2048^3 GEMM in PyTorch, measured when the table is printed: render a
--from-json table on the machine that measured it). Prints a markdown table.

    python scripts/bench_zoo.py [--models a,b] [--iters 30]
    python scripts/bench_zoo.py --from-json bench.json   # the table from bench_export.py --json figures
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import ModelRow, environment, gemm_peak, load_avg, run_all  # noqa: E402


def table(rows, peak2: float) -> str:
    out = ["| model | task | input | params (M) | GMACs | torch 1T ms | ORT 1T ms | OV 1T ms | torch 2T ms | ORT 2T ms | OV 2T ms "
           "| best 2T GFLOP/s | % of 2-core peak |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.source} | failed: {r.error} |" + " |" * 11)
            continue
        ms = r.ms
        best2 = min(ms["onnx@2"], ms["openvino@2"])
        gflops = r.gflops / (best2 / 1e3)
        out.append(f"| {r.source} | {r.task} | {'x'.join(map(str, r.input_shape[2:]))} | {r.params_m} | {r.gflops / 2:.3f} "
                   f"| {ms['torch@1']} | {ms['onnx@1']} | {ms['openvino@1']} | {ms['torch@2']} | {ms['onnx@2']} "
                   f"| {ms['openvino@2']} | {gflops:.1f} | {gflops / peak2 * 100:.0f}% |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated zoo names (default: all)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--from-json", type=Path, help="render figures written by bench_export.py --json instead of measuring")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    from edgekit.models import is_model, list_models

    if args.from_json:
        import json

        data = json.loads(args.from_json.read_text())
        rows = [ModelRow(**r) for r in data["rows"] if is_model(r["source"])]  # zoo models only
        head = f"{data['environment']}\nFigures of bench_export.py (its --json); the peak measured now, here."
    else:
        rows = run_all(args.models.split(",") if args.models else list_models(), (1, 2), args.warmup, args.iters)
        head = f"{environment()}\nMedians of {args.iters} runs after {args.warmup} warm-ups; {load_avg()} at the end."
    peak2 = gemm_peak(2)
    text = f"{head}\n2-thread fp32 GEMM peak of this CPU: {peak2:.0f} GFLOP/s.\n\n{table(rows, peak2)}"
    print(text)
    _docblock.maybe_write(args, text)
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
