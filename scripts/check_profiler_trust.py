#!/usr/bin/env python3
"""Trust check: does `edgekit profile`'s median agree with independent measurements of the same bundle?

    python scripts/check_profiler_trust.py [BUNDLE ...] [--threads 1] [--iterations 60] [--rounds 5]

Without bundles it exports the zoo's efficientvit_b0 (fp32) for ONNX Runtime and OpenVINO into a
temporary folder. For each bundle, in rounds that measure everything back to back (so load from
other processes drifts onto all of them alike), it takes the median latency from:

  * edgekit profile (the profiler under test: edgekit.profiling, no per-layer pass);
  * an independent timing loop written here against the runtime's own Python API (its own session,
    its own inputs, time.perf_counter_ns around each call), sharing no code with the profiler;
  * OpenVINO's benchmark_app (OpenVINO bundles; sync API, one stream, same threads and precision).

It prints one table and exits 1 when the profiler's median is more than --tolerance (10%) away from
an independent measurement's (median over rounds of the per-round ratio).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def profiler_median(bundle: Path, threads: int, iterations: int, warmup: int) -> float:
    import edgekit

    report = edgekit.profile(bundle, threads=threads, iterations=iterations, warmup=warmup, layer_iters=0)
    return report.data["results"][0]["runs"][0]["latency_ms"]["median"]


def loop_median(bundle: Path, threads: int, iterations: int, warmup: int) -> float:
    """Times the runtime directly, as an app would, with nothing from edgekit in the loop."""
    import numpy as np

    manifest = json.loads((bundle / "manifest.json").read_text())
    model = bundle / manifest["files"][0]["path"]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in manifest["inputs"][0]["shape"]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if manifest["runtime"]["name"] == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run():
            session.run(None, {name: x})
    else:
        import openvino as ov

        hint = manifest["runtime_options"].get("inference_precision", "f32")
        compiled = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                               "PERFORMANCE_HINT": "LATENCY",
                                                               "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()

        def run():
            request.infer({0: x})
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


def benchmark_app_median(bundle: Path, threads: int, iterations: int) -> float | None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest["runtime"]["name"] != "openvino":
        return None
    exe = Path(sys.executable).with_name("benchmark_app")
    hint = manifest["runtime_options"].get("inference_precision", "f32")
    # benchmark_app takes -nthreads only with -hint none; one stream and the sync API = our latency loop
    cmd = [str(exe), "-m", str(bundle / manifest["files"][0]["path"]), "-d", "CPU", "-hint", "none", "-nstreams", "1",
           "-api", "sync", "-niter", str(iterations), "-nthreads", str(threads), "-infer_precision", hint]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"Median:\s+([0-9.]+)\s+(us|ms)", out)
    if not m:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-800:]}")
    return float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=10.0, help="percent")
    ap.add_argument("--model", default="efficientvit_b0", help="zoo model exported when no bundle is given")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    bundles = args.bundles
    if not bundles:
        import edgekit

        bundles = [edgekit.export(args.model, t, Path(tmp.name) / f"{args.model}-{t}").path
                   for t in ("onnx", "openvino")]
    rows, ok = [], True
    for bundle in bundles:
        manifest = json.loads((bundle / "manifest.json").read_text())
        label = f"{manifest['model']['name']} {manifest['target']} {manifest['precision']}"
        methods = {"independent loop": lambda b: loop_median(b, args.threads, args.iterations, args.warmup)}
        if manifest["runtime"]["name"] == "openvino":
            methods["benchmark_app"] = lambda b: benchmark_app_median(b, args.threads, args.iterations)
        ours: list[float] = []
        theirs: dict[str, list[float]] = {m: [] for m in methods}
        for r in range(args.rounds):
            # each round measures the profiler and every reference back to back, alternating which goes
            # first, and the verdict is on per-round ratios: load from other processes drifts over
            # seconds, so it hits both sides of a ratio alike
            order = ["edgekit profile", *methods] if r % 2 == 0 else [*methods, "edgekit profile"]
            for method in order:
                if method == "edgekit profile":
                    ours.append(profiler_median(bundle, args.threads, args.iterations, args.warmup))
                else:
                    theirs[method].append(methods[method](bundle))
        rows.append((label, "edgekit profile", ours, None, ""))
        for method, values in theirs.items():
            ratio = statistics.median(a / b for a, b in zip(ours, values))
            diff = (ratio - 1) * 100
            agree = abs(diff) <= args.tolerance
            ok &= agree
            rows.append((label, method, values, diff, "agrees" if agree else "DISAGREES"))
    print(f"\nmedian latency (ms) per round, {args.threads} thread(s), {args.iterations} runs after {args.warmup} "
          f"warm-up, {args.rounds} rounds; profiler vs reference = median over rounds of the per-round ratio - 1; "
          f"tolerance {args.tolerance:g}%\n")
    print("| bundle | measurement | median of rounds | rounds | profiler vs it | |")
    print("|---|---|---:|---|---:|---|")
    for label, method, values, diff, verdict in rows:
        print(f"| {label} | {method} | {statistics.median(values):.3f} | {' / '.join(f'{v:.3f}' for v in values)} | "
              f"{'-' if diff is None else f'{diff:+.1f}%'} | {verdict} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
