#!/usr/bin/env python3
"""Quantization benchmark on trained weights: for each model trained by scripts/train_digits.py and each
target (ONNX Runtime, OpenVINO), in one run:

- fp32, fp16 (ONNX Runtime) / bf16 (OpenVINO) and edgekit int8, from edgekit's fp32 graph; and the naive int8
  a user gets from the tools alone: the model exported without edgekit's rewrites (``--no-rewrite``, the plain
  ONNX export) and quantized with the tool's documented defaults (ONNX Runtime: ``quantize_static``, QDQ, min-max,
  U8S8, per tensor; OpenVINO: ``nncf.quantize`` with its default preset and no ignored scope);
- median latency and its ratio to fp32 with a 95% interval, by edgekit's timing harness (variants in turns,
  fp32 also timed twice as the A/A control; same runtime, same input, same threads);
- top-1 (classification) or mIoU (segmentation) on the held-out digits, and agreement with the
  PyTorch fp32 model.

    python scripts/train_digits.py                    # once: trains and caches the checkpoints
    PYTHONPATH=. python scripts/bench_quant.py        # prints a markdown table
    PYTHONPATH=. python scripts/bench_quant.py --models efficientvit_b0 --targets onnx --iters 50 \\
        --doc docs/benchmarks.md --block quant        # and writes that generated block there
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402

MODELS = {  # name -> (model source, task folder)
    "efficientvit_b0": ("scripts.train_digits:efficientvit_b0_digits", "cls"),
    "swin_tiny": ("scripts.train_digits:swin_tiny_digits", "cls"),
    "segformer_b0": ("scripts.train_digits:segformer_b0_digits", "seg"),
    "efficientvit_b0_seg": ("scripts.train_digits:efficientvit_b0_seg_digits", "seg"),
    "tiny_classifier": ("scripts.train_digits:tiny_classifier_digits", "cls"),
    # the same trained weights at deployment-like sizes (digits upscaled by the preprocessing): where int8 pays
    "efficientvit_b0@256": ("scripts.train_digits:efficientvit_b0_digits_256", "cls"),
    "swin_tiny@256": ("scripts.train_digits:swin_tiny_digits_256", "cls"),
    "segformer_b0@384": ("scripts.train_digits:segformer_b0_digits_384", "seg"),
    # full-width Swin-T (28M parameters, 4x4 windows), trained at 64 and fine-tuned at 256: a deployment-size
    # hybrid, where the int8 GEMMs are most of the time
    "swin_t@256": ("scripts.train_digits:swin_t_digits_256", "cls"),
    # and Swin-T with its segmentation head, trained on the 96-pixel mosaics and fine-tuned at 256
    "swin_t_seg@256": ("scripts.train_digits:swin_t_seg_digits_256", "seg"),
}
VARIANTS = {"onnx": ("fp32", "fp16", "int8", "naive-int8"), "openvino": ("fp32", "bf16", "int8", "naive-int8")}


def latencies(open_fns: dict, x, warmup: int, iters: int, block: int = 10) -> dict[str, dict]:
    """Median ms per variant at 1 thread as CPU time of this process (robust on a shared machine: time spent
    descheduled by other processes does not count; 1 thread does no parallel work to hide) and at 2 threads
    as wall time, by edgekit's timing harness: the variants run in turns, ``block`` runs each, the order
    shuffled every round, fp32 also timed twice as the A/A control. Each variant's speedup over fp32 comes with its 95%
    interval (``cpu1_ci`` / ``wall2_ci``), and fp32's entry carries the control's (``cpu1_aa`` / ``wall2_aa``)."""
    from edgekit.engines.timing import compare, interleave

    out = {v: {} for v in open_fns}
    for key, threads, clock in (("cpu1", 1, "cpu"), ("wall2", 2, "wall")):
        runs = {v: open_fn(threads) for v, open_fn in open_fns.items()}
        base = "fp32" if "fp32" in runs else None
        samples = interleave({v: (lambda run=run: run(x)) for v, run in runs.items()}, baseline=base,
                             rounds=-(-iters // block), per_round=block, warmup=warmup, settle=1)
        for v in runs:
            out[v][key] = samples[v].median(clock)
        if base is not None:
            result = compare(samples, base, clock)
            for r in result.rows:
                if r.ratio is not None:
                    out[r.name][f"{key}_ci"] = [r.ratio.low, r.ratio.high]
            out[base][f"{key}_aa"] = [result.noise.low, result.noise.high]
        del runs
    return out


def failure(e: Exception) -> str:
    """One line for the table: the exception's type and the first 160 characters of its message."""
    return f"{e.__class__.__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def naive_onnxruntime(fp32_onnx: Path, calib_inputs: list):
    """What a user gets from ONNX Runtime's quantize_static with its defaults (QDQ, min-max, U8S8, per tensor)
    on the plain export; returns open(threads) -> infer."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib_inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    out = fp32_onnx.with_name("naive_int8.onnx")
    quantize_static(str(fp32_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)

    def open_fn(threads: int):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
        return lambda x: sess.run(None, {"input": x})[0]

    return open_fn


def naive_openvino(fp32_xml: Path, calib_inputs: list):
    """NNCF's default preset on the OpenVINO model, no ignored scope; returns open(threads) -> infer."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    core = ov.Core()
    q = nncf.quantize(core.read_model(str(fp32_xml)), nncf.Dataset(calib_inputs), subset_size=len(calib_inputs))

    def open_fn(threads: int):
        compiled = core.compile_model(q, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_NUM_THREADS": threads})
        req = compiled.create_infer_request()

        def run(x):
            req.infer([x])
            return np.array(req.get_output_tensor(0).data)

        return run

    return open_fn


def bench_model(name: str, targets: list[str], threads: int, warmup: int, iters: int, method: str, limit: int | None,
                work: Path, log, max_drop: float | None = None) -> list[dict]:
    import edgekit
    from edgekit.calib import load_calibration
    from edgekit.accuracy import evaluate_fn, read_labeled_folder
    from edgekit.stages.onnx_export import prepare_for_deploy
    from edgekit.stages.parity import torch_reference
    from edgekit.sources import load_source
    from scripts.train_digits import write_folders

    source, kind = MODELS[name]
    root = write_folders()
    calib_dir, val_dir = root / kind / "calib", root / kind / "val"
    src = load_source(source)
    spec = src.spec
    labeled = read_labeled_folder(val_dir, spec.task)
    torch_fn = torch_reference(prepare_for_deploy(src.model))
    x0 = load_calibration(calib_dir, spec.preprocess, size=1).inputs[0]
    calib_inputs = load_calibration(calib_dir, spec.preprocess).inputs
    rows = []
    ref_metric, _, _, n = evaluate_fn(torch_fn, labeled, spec.preprocess, spec.num_classes, limit=limit)
    for target in targets:
        built = {}  # variant -> (row, open_fn): every variant built first, then timed in turns, then evaluated
        for variant in VARIANTS[target]:
            t0 = time.perf_counter()
            row = {"model": name, "input": "x".join(map(str, spec.input_shape[2:])), "target": target,
                   "variant": variant, "torch_metric": ref_metric, "images": n}
            try:
                if variant == "naive-int8":  # the plain export (no edgekit rewrites), quantized by the tool alone
                    plain = work / f"{name}-{target}-plain-fp32"
                    edgekit.export(source, target, plain, rewrite=False, verify=False, force=True)
                    open_fn = (naive_onnxruntime(plain / "model.onnx", calib_inputs) if target == "onnx"
                               else naive_openvino(plain / "model.xml", calib_inputs))
                else:
                    out = work / f"{name}-{target}-{variant}"
                    b = edgekit.export(source, target, out, precision=variant, calib=calib_dir, method=method,
                                       verify=False, force=True,
                                       max_drop=max_drop if variant == "int8" else None)

                    def open_fn(n, out=out):
                        return edgekit.runtime.load(out, threads=n).infer
                    info = b.manifest.get("quantization") or {}
                    row["parity_passed"] = b.manifest["parity"]["passed"]
                    if info:
                        row["recipe"] = info.get("recipe")
                        row["islands"] = sum(e["count"] for e in info.get("islands", {}).values())
                        row["kept_blocks"] = info.get("budget", {}).get("kept_blocks", [])
                built[variant] = (row, open_fn)
            except Exception as e:  # one failing variant must not lose the others' figures
                row["error"] = failure(e)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
        try:
            ms = latencies({v: fn for v, (_, fn) in built.items()}, x0, warmup, iters) if built else {}
        except Exception as e:  # a bundle that builds but does not run: report it, keep the other models
            ms = {}
            for row, _ in built.values():
                row["error"] = f"timing failed: {failure(e)}"
        fp32_ms = ms.get("fp32")
        for variant, (row, open_fn) in built.items():
            if variant not in ms:
                continue
            t0 = time.perf_counter()
            try:
                row["ms"] = {k: ms[variant][k] for k in ("cpu1", "wall2")}
                row["speedup"] = {k: fp32_ms[k] / v for k, v in row["ms"].items()} if fp32_ms else None
                row["interval"] = {k: ms[variant][f"{k}_ci"] for k in ("cpu1", "wall2") if f"{k}_ci" in ms[variant]}
                row["noise"] = {k: fp32_ms[f"{k}_aa"] for k in ("cpu1", "wall2")} if fp32_ms else {}
                metric, agreement, _, _ = evaluate_fn(open_fn(threads), labeled, spec.preprocess, spec.num_classes,
                                                      torch_fn, limit)
                row.update(metric=metric, agreement=agreement)
            except Exception as e:
                row["error"] = failure(e)
            row["seconds"] = round(row["seconds"] + time.perf_counter() - t0, 1)
        for row in rows[-len(VARIANTS[target]):]:
            log(json.dumps({k: v for k, v in row.items() if k != "kept_blocks"}))
    return rows


def table(rows: list[dict], threads: int) -> str:
    from edgekit.engines.timing import Ratio

    out = ["| model (input) | target | precision | ms 1T (CPU time) | speedup 1T [95% CI] | ms 2T (wall) "
           "| speedup 2T [95% CI] "
           "| top-1 / mIoU | drop vs PyTorch fp32 | agreement with fp32 | notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seg = "_seg" in r["model"] or r["model"].startswith("segformer")

        def fmt(v):
            return "-" if v is None else (f"{v:.3f}" if seg else f"{v * 100:.1f}%")

        if "error" in r:
            out.append(f"| {r['model']} ({r['input']}) | {r['target']} | {r['variant']} | failed: {r['error']} |"
                       + " |" * 7)
            continue
        drop = r["torch_metric"] - r["metric"]
        notes = []
        if r.get("recipe"):
            notes.append(f"{r['recipe']}, {r.get('islands', 0)} nodes float")
        if r.get("kept_blocks"):
            notes.append(f"budget kept {len(r['kept_blocks'])} block(s)")
        if r["variant"] == "naive-int8":
            notes.append("plain export, ORT quantize_static defaults" if r["target"] == "onnx"
                         else "plain export, NNCF default preset")
        if r.get("parity_passed") is False:  # measured with verify=False so the figures exist; say so
            notes.append("**parity gate FAILS** (`edgekit export` would refuse it)")
        ms, sp = r["ms"], r["speedup"] or {"cpu1": float("nan"), "wall2": float("nan")}  # no fp32 row: no ratio

        def speedup(key: str) -> str:
            ci = (r.get("interval") or {}).get(key)
            if ci is None:
                aa = (r.get("noise") or {}).get(key)  # the fp32 row: its A/A control, the noise floor
                return f"{sp[key]:.2f}x" + (f" (A/A [{aa[0]:.2f}, {aa[1]:.2f}])" if aa else "")
            return Ratio(sp[key], *ci).cell()

        out.append(f"| {r['model']} ({r['input']}) | {r['target']} | {r['variant']} | {ms['cpu1']:.2f} "
                   f"| {speedup('cpu1')} | {ms['wall2']:.2f} | {speedup('wall2')} | {fmt(r['metric'])} "
                   f"| {('%.3f' % drop) if seg else ('%.1f pt' % (drop * 100))} "
                   f"| {r['agreement'] * 100:.1f}% | {'; '.join(notes)} |")
    return "\n".join(out)


GOALS = {"openvino": 2.0, "onnx": 1.5}  # the INT8 speed goals vs fp32 on this CPU (AVX-512 VNNI)


def verdict(rows: list[dict]) -> list[str]:
    """The goals, checked on these figures: int8 speed vs fp32 (2 threads, wall) and at most 1 point lost."""
    from edgekit.engines.timing import Ratio

    lines = []
    for r in rows:
        if r["variant"] != "int8" or "error" in r or not r.get("speedup"):
            continue
        sp, drop = r["speedup"]["wall2"], r["torch_metric"] - r["metric"]
        ci = (r.get("interval") or {}).get("wall2")
        goal = GOALS[r["target"]]
        ratio = Ratio(sp, *(ci if ci is not None else (sp, sp)))
        noisy = ratio.verdict == "within noise"  # not told apart from fp32 at 2T
        speed = (f"{ratio.against(goal)} {goal}x ({ratio.text()} at 2T{', within noise of fp32' if noisy else ''}; "
                 f"{r['speedup']['cpu1']:.2f}x at 1T)")
        change = f"{abs(drop) * 100:.1f} pt {'lost' if drop >= 0 else 'gained'}"
        acc = ("holds" if drop <= 0.01 + 1e-9 else "LOSES MORE THAN") + f" 1 point ({change})"
        gate = "" if r.get("parity_passed", True) else "; the parity gate FAILS"
        lines.append(f"{r['model']} {r['target']} int8: speed {speed}; accuracy {acc}{gate}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="efficientvit_b0,swin_tiny,segformer_b0,efficientvit_b0@256,swin_tiny@256,"
                                        "segformer_b0@384,swin_t@256,swin_t_seg@256", help=f"from {', '.join(MODELS)}")
    ap.add_argument("--max-drop", type=float, default=1.0,
                    help="edgekit int8's budget: points of agreement with fp32 on the calibration set (default 1)")
    ap.add_argument("--targets", default="onnx,openvino")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--method", default="entropy")
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N validation images")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows += bench_model(name, args.targets.split(","), args.threads, args.warmup, args.iters, args.method,
                                args.limit, Path(tmp), lambda s: print(s, file=sys.stderr, flush=True), args.max_drop)
    load = load_avg()
    text = (f"{environment(('onnxruntime', 'openvino'), 'threads per column')}\nMedians of {args.iters} runs after "
            f"{args.warmup} warm-ups; {load} at the end. Baselines: fp32 of the same runtime (A/A: fp32 timed "
            f"twice); naive int8 = the --no-rewrite export quantized with the tool's defaults (notes column).\n\n"
            + table(rows, args.threads) + "\n\n"
            + "\n".join(f"- {line}" for line in verdict(rows)))
    print(text)
    _docblock.maybe_write(args, text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
