#!/usr/bin/env python3
"""How fast can ONNX Runtime's int8 make a depthwise / Hardswish model at all? (EfficientViT-B0 by default)

bench_quant.py measures what edgekit chooses under an accuracy budget. This asks the ceiling question
for ONNX Runtime on one model, accuracy aside: every weighted op outside the default islands in int8
(depthwise convolutions included), with Hardswish left float (ONNX Runtime has no int8 Hardswish
kernel) and with Hardswish rewritten into int8 ops ONNX Runtime does have (QLinearAdd + QLinearMul,
edgekit.quant.hardswish, which edgekit's ONNX Runtime recipes use).

It prints, on the same runtime in one run: median latency per variant (1 thread CPU time, 2 threads
wall, variants timed in turns), the ratio to fp32, cosine vs fp32 on the calibration images, and the
time ONNX Runtime's profiler gives the convolutions themselves (fp32 Conv with Hardswish fused in vs
QLinearConv): that ratio bounds what int8 can gain if everything around the convolutions were free.

    python scripts/train_digits.py efficientvit_b0@256            # once
    PYTHONPATH=. python scripts/bench_int8_ceiling.py [--model SOURCE] [--calib DIR] [--iters 100]
    PYTHONPATH=. python scripts/bench_int8_ceiling.py --model efficientvit_b1_seg --calib calib --calib-size 6
    PYTHONPATH=. python scripts/bench_int8_ceiling.py --model efficientvit_b3 --input-shape 1x3x256x256 --calib calib --calib-size 6
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_quant import latencies


def session(model: onnx.ModelProto, threads: int, profile: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if profile:
        so.enable_profiling, so.profile_file_prefix = True, profile
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def conv_ms(model: onnx.ModelProto, x: np.ndarray, tmp: Path, runs: int = 20) -> float:
    """ms per run ONNX Runtime's profiler gives Conv / FusedConv / QLinearConv kernels (1 thread)."""
    s = session(model, 1, str(tmp / "profile"))
    name = s.get_inputs()[0].name
    for _ in range(runs):
        s.run(None, {name: x})
    events = json.loads(Path(s.end_profiling()).read_text())
    per_op = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / runs
    return sum(v for k, v in per_op.items() if k in ("Conv", "FusedConv", "QLinearConv", "NhwcFusedConv"))


def main() -> None:
    import edgekit
    from edgekit.calib import load_calibration
    from edgekit.config import Precision, Target, parse_shape
    from edgekit.quant.calibrate import calibrate
    from edgekit.quant.islands import find_islands
    from edgekit.quant.options import QuantOptions
    from edgekit.quant.qdq import FLOAT_OUTPUT_OPS, QdqRecipe, quantize_qdq
    from edgekit.sources import load_source
    from edgekit.targets import get_backend

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="scripts.train_digits:efficientvit_b0_digits_256")
    ap.add_argument("--calib", type=Path, default=Path.home() / ".cache/edgekit/digits/cls/calib")
    ap.add_argument("--calib-size", type=int, default=32)
    ap.add_argument("--input-shape", default=None, help="e.g. 1x3x256x256 [default: the model's]")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edgekit.export(args.model, "onnx", tmp / "fp32", verify=False, force=True, input_shape=args.input_shape)
        fp32 = onnx.load(str(tmp / "fp32" / "model.onnx"))
        shape = parse_shape(args.input_shape) if args.input_shape else None
        calib = load_calibration(args.calib, load_source(args.model, None, shape).spec.preprocess, size=args.calib_size)
        ranges, _ = calibrate(fp32, calib.inputs, calib.sha256, QuantOptions())
        rules = get_backend(Target.ONNX).int8.island_rules
        islands = {i.node for i in find_islands(fp32, rules, Precision.INT8, (), True)}
        full = quantize_qdq(fp32, ranges, islands, QdqRecipe(activation="u8", float_output_ops=FLOAT_OUTPUT_OPS))
        rewritten = quantize_qdq(fp32, ranges, islands,
                                 QdqRecipe(activation="u8", float_output_ops=FLOAT_OUTPUT_OPS, int8_hardswish=True))
        count = sum(n.op_type == "HardSwish" for n in full.graph.node) - sum(
            n.op_type == "HardSwish" for n in rewritten.graph.node)
        variants = {"fp32": fp32, "int8, Hardswish float": full, "int8, Hardswish as QLinearAdd/Mul": rewritten}
        x = calib.inputs[0]
        name = fp32.graph.input[0].name

        def opener(model):
            def open_fn(threads):
                s = session(model, threads)
                return lambda v: s.run(None, {name: v})
            return open_fn

        ms = latencies({k: opener(m) for k, m in variants.items()}, x, args.warmup, args.iters)
        ref = [session(fp32, 2).run(None, {name: v})[0].ravel() for v in calib.inputs]
        print(f"{args.model}: every weighted op outside the default islands in int8 (U8S8), {count} Hardswish "
              f"rewritten; ONNX Runtime, median of {args.iters} runs after {args.warmup} warm-ups\n")
        print("| variant | ms 1T (CPU) | vs fp32 | ms 2T (wall) | vs fp32 | convolutions ms 1T (profiler) "
              "| cosine min vs fp32 |")
        print("|---|---|---|---|---|---|---|")
        for k, m in variants.items():
            s = session(m, 2)
            outs = [s.run(None, {name: v})[0].ravel() for v in calib.inputs]
            cos = min(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(ref, outs))
            r = ms[k]
            print(f"| {k} | {r['cpu1']:.2f} | {ms['fp32']['cpu1'] / r['cpu1']:.2f}x | {r['wall2']:.2f} "
                  f"| {ms['fp32']['wall2'] / r['wall2']:.2f}x | {conv_ms(m, x, tmp):.2f} | {cos:.4f} |")


if __name__ == "__main__":
    main()
