#!/usr/bin/env python3
"""Export benchmark: for each zoo model and a few timm hybrids, export seconds, file size, parity
figures, and median latency of PyTorch eager vs the ONNX Runtime bundle vs the OpenVINO bundle at 1
and 2 threads, in one run. Prints a markdown table (ratios are eager / bundle: > 1 means faster).

    python scripts/bench_export.py                      # everything (takes a while on 2 cores)
    python scripts/bench_export.py --models efficientvit_b0,timm:swin_tiny_patch4_window7_224 --iters 20
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import environment, load_avg, run_all, to_json  # noqa: E402

TIMM = ["timm:efficientvit_b0", "timm:swin_tiny_patch4_window7_224", "timm:fastvit_t8", "timm:efficientformerv2_s0"]


def _vs(row, key: str) -> str:
    """PyTorch median / the runtime's, with its 95% interval from the timing harness (rows of older JSON: the
    plain ratio)."""
    from edgekit.engines.timing import Ratio

    if key in row.vs_torch:
        ratio = Ratio(*row.vs_torch[key])
        return ratio.cell()
    return f"{row.ms['torch@2'] / row.ms[key]:.2f}x"


def _aa(row, key: str) -> str:
    """The A/A control's 95% interval (PyTorch timed twice): the noise floor of that thread count."""
    aa = row.noise.get(key)
    return f"[{aa[1]:.2f}, {aa[2]:.2f}]" if aa else "-"


def table(rows) -> str:
    out = ["| model | input | export s (ORT / OV) | MB | parity ORT: cos / maxabs/range / agree | parity OV: cos / maxabs/range / agree "
           "| torch 1T | ORT 1T | OV 1T | torch 2T | ORT 2T | OV 2T | ORT vs torch 2T [95% CI] | OV vs torch 2T [95% CI] "
           "| A/A 2T |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.source} | failed: {r.error} |" + " |" * 13)
            continue
        p = {t: f"{v['cosine_min']:.6f} / {v['max_abs_rel']:.1e} / {v['agreement'] * 100:.0f}%" for t, v in r.parity.items()}
        ms = r.ms
        out.append(f"| {r.source} | {'x'.join(map(str, r.input_shape[2:]))} | {r.export_s['onnx']} / {r.export_s['openvino']} "
                   f"| {r.size_mb['onnx']} | {p['onnx']} | {p['openvino']} | {ms['torch@1']} | {ms['onnx@1']} | {ms['openvino@1']} "
                   f"| {ms['torch@2']} | {ms['onnx@2']} | {ms['openvino@2']} "
                   f"| {_vs(r, 'onnx@2')} | {_vs(r, 'openvino@2')} | {_aa(r, '@2')} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated sources (default: every zoo model + a few timm hybrids)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--partial", type=Path, help="append each model's figures to this JSON-lines file as measured")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    from edgekit.models import list_models

    sources = args.models.split(",") if args.models else list_models() + TIMM
    rows = run_all(sources, (1, 2), args.warmup, args.iters, partial=args.partial)
    env = environment()
    text = (f"{env}\nMedians of {args.iters} runs after {args.warmup} warm-ups; {load_avg()} at the end. Baseline: "
            f"PyTorch eager (the deploy-mode model, same input, same threads); A/A: PyTorch timed twice.\n\n"
            f"{table(rows)}")
    print(text)
    _docblock.maybe_write(args, text)
    if args.json:  # the environment travels with the figures, for bench_zoo.py --from-json
        args.json.write_text(json.dumps({"environment": env, "rows": to_json(rows)}, indent=1))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
