#!/usr/bin/env bash
# Run on a device with an NVIDIA GPU and TensorRT (Jetson, GPU server) to check what edgekit's CI cannot:
# for one zoo model per plugin (swin_tiny: WindowAttention, efficientvit_b0: LinearAttention) it builds the
# engine, measures parity on the engine, loads it again and times it, in the configurations below, and prints
# a pass/fail table. Exit status 0 only if every check that applies passed.
#
#   scripts/device_check_trt.sh [OUT_DIR]        # default OUT_DIR: ./device-check-trt
#   MODELS="swin_tiny" ITERS=200 scripts/device_check_trt.sh
#
# Configurations per model:
#   aot-fp16        plugins ahead of time (TensorRT >= 10.9 with Triton), fp16: plugin layers in the engine
#   bodies-fp16     the same model with the plugin nodes built from their ONNX function bodies (what TensorRT
#                   10.3 / JetPack 6 gets), for the timing comparison
#   vc-ampere-fp16  --version-compatible --hardware-compatibility ampere+: loads only with host code allowed,
#                   plugin kernels as sm_80 PTX 7.0 (skipped on Jetson: JetPack has no hardware compatibility)
# Needs: pip install edgekit (with the [trt] extra where PyPI's TensorRT applies; JetPack's system TensorRT
# otherwise), and a GPU. Nothing is downloaded: the zoo models are built with random weights.
set -u
OUT="${1:-device-check-trt}"
PYTHON="${PYTHON:-python3}"
export EDGEKIT_CHECK_OUT="$OUT" EDGEKIT_CHECK_MODELS="${MODELS:-swin_tiny efficientvit_b0}" \
       EDGEKIT_CHECK_ITERS="${ITERS:-100}"
exec "$PYTHON" - <<'PY'
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

try:
    import tensorrt as trt
except Exception as e:  # noqa: BLE001 (ImportError, OSError: bindings without libraries)
    print(f"device_check_trt: TensorRT is not importable here ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
          f"run this on a device with TensorRT", file=sys.stderr)
    sys.exit(2)
import numpy as np

import edgekit
from edgekit.targets.tensorrt import device as tensorrt_device

env = tensorrt_device.probe()
if not env.can_build:
    print(f"device_check_trt: {tensorrt_device.missing_message(env)}", file=sys.stderr)
    sys.exit(2)
out = Path(os.environ["EDGEKIT_CHECK_OUT"]).resolve()
models = os.environ["EDGEKIT_CHECK_MODELS"].split()
iters = int(os.environ["EDGEKIT_CHECK_ITERS"])
jetson = Path("/etc/nv_tegra_release").exists()
print(f"TensorRT {env.tensorrt}; GPU {env.gpu.name} (compute capability {env.gpu.compute_capability}); "
      f"{platform.machine()}{' (Jetson)' if jetson else ''}")
print(f"ahead-of-time plugins: {'yes' if env.aot_plugins_problem is None else 'no: ' + env.aot_plugins_problem}\n")

PLUGIN = {"swin_tiny": "WindowAttention", "efficientvit_b0": "LinearAttention"}
CONFIGS = {
    "aot-fp16": ({}, "aot"),
    "bodies-fp16": ({}, "function-bodies"),
    "vc-ampere-fp16": ({"version_compatible": True, "hardware_compatibility": "ampere+"}, "aot"),
}
rows, failed = [], False


def timed(bundle: Path) -> tuple[float, bool]:
    runner = edgekit.runtime.load(bundle)
    shape = [d if isinstance(d, int) else 1 for d in runner.manifest["inputs"][0]["shape"]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(10):
        y = runner.infer(x)
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        y = runner.infer(x)
        samples.append((time.perf_counter() - t) * 1e3)
    runner.close()
    return statistics.median(samples), bool(np.isfinite(y).all())


for model in models:
    for name, (options, mode) in CONFIGS.items():
        row = {"model": model, "plugin": PLUGIN.get(model, "?"), "config": name}
        if mode == "aot" and env.aot_plugins_problem is not None:
            rows.append({**row, "result": "skip", "detail": env.aot_plugins_problem})
            continue
        if options.get("hardware_compatibility") and (jetson or env.gpu.cc < (8, 0)):
            rows.append({**row, "result": "skip", "detail": "hardware compatibility needs a non-Jetson GPU >= 8.0"})
            continue
        bundle = out / f"{model}-{name}"
        saved = tensorrt_device.aot_plugin_problem
        if mode == "function-bodies":  # what a TensorRT without ahead-of-time plugins does
            tensorrt_device.aot_plugin_problem = lambda module: "forced by device_check_trt (bodies-fp16)"
        try:
            t0 = time.perf_counter()
            m = edgekit.export(model, "trt", bundle, precision="fp16", target_options=options, force=True).manifest
            build_s = time.perf_counter() - t0
            ms, finite = timed(bundle)
        except Exception as e:  # noqa: BLE001 (the table reports every failure, one line each)
            failed = True
            rows.append({**row, "result": "FAIL", "detail": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
            continue
        finally:
            tensorrt_device.aot_plugin_problem = saved
        runtime, parity = m["runtime"], m.get("parity", {})
        problems = []
        if runtime.get("plugins", {}).get("mode") != mode:
            problems.append(f"plugins built as {runtime.get('plugins', {}).get('mode')}, not {mode}")
        if mode == "aot" and not runtime.get("plugin_layers"):
            problems.append("no plugin layer in the engine")
        if not (parity.get("measured") and parity.get("passed")):
            problems.append(f"parity not passed (cosine_min {parity.get('cosine_min')})")
        if not finite:
            problems.append("non-finite output")
        failed |= bool(problems)
        detail = "; ".join(problems) or (f"{runtime.get('plugin_layers', 0)} plugin layer(s), cosine_min "
                                         f"{parity.get('cosine_min'):.6f}, build {build_s:.0f} s")
        rows.append({**row, "result": "FAIL" if problems else "pass", "ms": ms, "detail": detail})

widths = {"model": 16, "plugin": 16, "config": 15, "result": 6}
print(" ".join(k.ljust(w) for k, w in widths.items()) + " median ms  detail")
for r in rows:
    ms = f"{r['ms']:9.3f}" if "ms" in r else " " * 9
    print(" ".join(str(r[k]).ljust(w) for k, w in widths.items()) + f" {ms}  {r['detail']}")
(out / "device_check_trt.json").parent.mkdir(parents=True, exist_ok=True)
(out / "device_check_trt.json").write_text(json.dumps({"tensorrt": env.tensorrt, "gpu": env.gpu.name,
                                                        "compute_capability": env.gpu.compute_capability,
                                                        "machine": platform.machine(), "iterations": iters,
                                                        "rows": rows}, indent=2) + "\n")
print(f"\nwritten: {out / 'device_check_trt.json'} (median of {iters} runs after 10 warm-ups, host<->device copies "
      f"included)")
sys.exit(1 if failed else 0)
PY
