#!/usr/bin/env python3
"""Does edgekit's rewriting pay? Naive export vs edgekit's export, same runtime, precision and threads.

For every model (default: each zoo model with attention, plus timm's Swin-T and EfficientViT-B0):

- naive:   ``edgekit.export(..., rewrite=False)`` — plain torch.onnx.export + onnxslim, no swaps, no rules;
- edgekit: ``edgekit.export(...)`` — the target's module swaps and ONNX rules (edgekit/rewrite/registry.py);

both built for ONNX Runtime (fp32) and OpenVINO (fp32 and bf16), optionally int8 on both, both
checked against PyTorch on the bundled photographs (cosine, max abs error / output range), then timed in one
process on the same pinned input by edgekit's timing harness (edgekit/engines/timing.py): naive and edgekit
alternate run by run, the naive bundle is also timed a second time as the A/A control, and the speedup
(naive / edgekit median) comes with its 95% bootstrap interval; one whose interval holds 1.0 is "within
noise". Prints a markdown table: median latencies, speedup and interval, the A/A noise floor, parity of
both, achieved GFLOP/s against this CPU's peak (a 2048^3 GEMM in PyTorch, measured at the start of the run),
and the rules that fired, under a line naming the CPU, its ISA flags and the runtimes.

``--rule NAME`` measures one rule or swap alone: "naive" is then edgekit's export without NAME, "edgekit" the
export with it (everything else the same), so the ratio is what NAME adds in its pipeline.

    python scripts/bench_rewrites.py --threads 2 --iters 20
    python scripts/bench_rewrites.py --models swin_tiny,timm:swin_tiny_patch4_window7_224 --threads 1,2
    python scripts/bench_rewrites.py --models swin_tiny --runtimes onnx --threads 2 --rule saturate_attention_mask
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import load_avg  # noqa: E402

TIMM = ["timm:swin_tiny_patch4_window7_224", "timm:efficientvit_b0"]
# GEMM peak by (precision, threads), measured on this CPU at the start of a run (scripts/_bench.gemm_peak);
# an AMD EPYC Zen 4 measured fp32 96 / 193 and bf16 202 / 415 GFLOP/s. int8 rows are compared with the fp32 peak.
PEAK_GFLOPS: dict[tuple[str, int], float] = {}


def peaks_note() -> str:
    return f"GEMM peak here (GFLOP/s): {', '.join(f'{p} {n}T {v:.0f}' for (p, n), v in PEAK_GFLOPS.items())}"


def measure_peaks(threads, precisions) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bench import gemm_peak

    for n in threads:
        PEAK_GFLOPS[("fp32", n)] = PEAK_GFLOPS[("int8", n)] = gemm_peak(n)
        if "bf16" in precisions:  # on a CPU without AVX512-BF16 this is PyTorch's slow path, and OpenVINO runs f32
            PEAK_GFLOPS[("bf16", n)] = gemm_peak(n, torch.bfloat16)


PRECISIONS = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
WINDOWED = ("swin",)  # sources whose attention is windowed: the 1.05x / 1.2x targets on ORT at 2T apply to them
CALIB_SIZE = 3  # bundled photographs per parity check


@dataclass
class Row:
    source: str
    runtime: str
    precision: str
    threads: int
    naive_ms: float = 0.0
    edgekit_ms: float = 0.0
    naive_min_ms: float = 0.0
    edgekit_min_ms: float = 0.0
    gflop: float = 0.0
    parity: dict = field(default_factory=dict)  # "naive" / "edgekit" -> {cosine_min, max_abs_rel, passed}
    applied: dict = field(default_factory=dict)  # rule or swap -> count (edgekit bundle, non-zero only)
    naive_failed: str = ""  # why the naive export did not build (edgekit's is timed alone)
    error: str = ""
    interval: list = field(default_factory=list)  # [low, high]: the speedup's 95% bootstrap interval
    noise: list = field(default_factory=list)  # the A/A control (naive timed twice): [ratio, low, high]

    @property
    def speedup(self) -> float:
        return self.naive_ms / self.edgekit_ms if self.edgekit_ms and self.naive_ms else 0.0

    @property
    def finding(self) -> str:
        """faster / slower / within noise (the interval holds 1.0), from the harness."""
        if not self.interval:
            return ""
        from edgekit.engines.timing import Ratio

        return Ratio(self.speedup, *self.interval).verdict

    def gflops(self, which: str) -> float:
        ms = self.naive_ms if which == "naive" else self.edgekit_ms
        return self.gflop / (ms / 1e3) if ms else 0.0


def attention_models() -> list[str]:
    """Zoo models whose blocks have an attention core (``_attention`` or ``_linear_attention``)."""
    from edgekit.models import create_model, list_models

    out = []
    for name in list_models():
        model = create_model(name)
        if any(hasattr(m, "_attention") or hasattr(m, "_linear_attention") for m in model.modules()):
            out.append(name)
    return out


@contextlib.contextmanager
def without(name: str | None):
    """edgekit's rewrite registry without the rule or swap ``name`` (nothing changed for None)."""
    from edgekit.rewrite import registry

    if name is None:
        yield
        return
    saved = {"_PIPELINES": dict(registry._PIPELINES), "_SWAPS": dict(registry._SWAPS)}
    if not any(item.name == name for table in saved.values() for items in table.values() for item in items):
        raise SystemExit(f"error: --rule {name}: no rule or swap of that name in edgekit/rewrite/registry.py")
    for attr, table in saved.items():
        getattr(registry, attr).update({t: tuple(i for i in items if i.name != name) for t, items in table.items()})
    try:
        yield
    finally:
        for attr, table in saved.items():
            getattr(registry, attr).clear()
            getattr(registry, attr).update(table)


def _export(source: str, target: str, precision: str, out: Path, rewrite: bool):
    import edgekit

    # verify=False: the parity figures are still measured and recorded, the gate just does not stop the run;
    # CALIB_SIZE photographs keep the many exports affordable on 2 cores. int8: both graphs quantized by the
    # same edgekit recipe search, calibrated on all bundled photographs, so only the rewrites differ
    return edgekit.export(source, target, out, precision=precision, rewrite=rewrite, verify=False, force=True,
                          calib_size=None if precision == "int8" else CALIB_SIZE)


def _input(manifest: dict) -> np.ndarray:
    from edgekit.calib import load_calibration
    from edgekit.preprocess import Preprocess

    x = load_calibration(None, Preprocess.from_dict(manifest["preprocess"]), size=1).inputs[0]
    batch = manifest["inputs"][0]["shape"][0]
    return np.repeat(x, batch, axis=0) if isinstance(batch, int) and batch > 1 else x


def _interleaved(naive, fast, x: np.ndarray, warmup: int, iters: int, clock: str = "wall"):
    """(naive ms, edgekit ms, the speedup's Ratio, the A/A Ratio), timed by edgekit's harness."""
    from edgekit.engines.timing import compare, interleave

    samples = interleave({"naive": lambda: naive(x), "edgekit": lambda: fast(x)}, baseline="naive", rounds=iters,
                         warmup=warmup, settle=1)  # settle: no timed run pays for the other session's threads
    result = compare(samples, "naive", clock)
    pick = (lambda s: s.wall_ms) if clock == "wall" else (lambda s: s.cpu_ms)
    (row,) = [r for r in result.rows if r.name == "edgekit"]
    return pick(samples["naive"]), pick(samples["edgekit"]), row.ratio, result.noise


def _parity(manifest: dict) -> dict:
    p = manifest["parity"]
    return {"cosine_min": p["cosine_min"], "max_abs_rel": p["max_abs_rel"], "passed": p["passed"]}


def measure(source: str, runtimes, threads, warmup: int, iters: int, precisions, clock: str = "wall",
            rule: str | None = None) -> list[Row]:
    import edgekit.runtime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in runtimes:
            for precision in [p for p in PRECISIONS[runtime] if p in precisions]:
                bundles, errors = {}, {}
                # naive: no rewrites, or with --rule, edgekit's rewrites without that one
                variants = (("naive", False, None), ("edgekit", True, None)) if rule is None else \
                    (("naive", True, rule), ("edgekit", True, None))
                for variant, rewrite, left_out in variants:
                    try:  # one failing export must not lose the other's figures
                        with without(left_out):
                            bundles[variant] = _export(source, runtime, precision,
                                                       Path(tmp) / f"{runtime}-{precision}-{variant}", rewrite)
                    except Exception as e:
                        errors[variant] = f"{e.__class__.__name__}: {str(e).splitlines()[0][:140]}"
                if "edgekit" not in bundles:
                    rows.append(Row(source, runtime, precision, 0, error=f"edgekit export {errors['edgekit']}"))
                    continue
                fast = bundles["edgekit"]
                rw = fast.manifest["rewrites"]
                applied = {k: v for k, v in {**rw.get("swaps", {}), **rw.get("rules", {})}.items() if v}
                x = _input(fast.manifest)
                for n in threads:
                    row = Row(source, runtime, precision, n, gflop=fast.manifest["model"]["flops"] / 1e9,
                              parity={"edgekit": _parity(fast.manifest)}, applied=applied)
                    b = edgekit.runtime.load(fast.path, threads=n)
                    try:
                        if "naive" in bundles:
                            row.parity["naive"] = _parity(bundles["naive"].manifest)
                            a = edgekit.runtime.load(bundles["naive"].path, threads=n)
                            try:
                                ta, tb, speedup, noise = _interleaved(a.infer, b.infer, x, warmup, iters, clock)
                            finally:
                                a.close()
                            row.naive_ms, row.naive_min_ms = statistics.median(ta), min(ta)
                            row.interval, row.noise = [speedup.low, speedup.high], [noise.value, noise.low, noise.high]
                        else:  # the naive export does not even build: edgekit's figures alone
                            row.naive_failed = errors["naive"]
                            tb = _interleaved(b.infer, b.infer, x, warmup, iters, clock)[1]
                    finally:
                        b.close()
                    row.edgekit_ms, row.edgekit_min_ms = statistics.median(tb), min(tb)
                    rows.append(row)
    return rows


def _short(applied: dict) -> str:
    names = {"fuse_attention_ort": "attn", "fuse_gelu": "gelu", "fuse_layer_norm": "ln", "fold_constants": "fold",
             "lower_window_rank": "rank4", "split_qkv_heads": "qkv", "fold_attention_bias": "bias",
             "remove_redundant_layout": "layout", "linear_attention_plugin": "LA-plugin",
             "window_attention_plugin": "WA-plugin", "fold_batchnorm": "bn", "lower_roll": "roll",
             "hf_segformer_eager_attention": "hf-eager", "fuse_window_permutation": "perm",
             "expand_window_bias": "bias4d", "saturate_attention_mask": "mask"}
    return " ".join(f"{names.get(k, k)}x{v}" for k, v in applied.items()) or "-"


def table(rows: list[Row]) -> str:
    out = ["| model | runtime | prec | thr | naive ms | edgekit ms | speedup [95% CI] | A/A | parity naive: cos / "
           "maxabs/range | parity edgekit: cos / maxabs/range | GFLOP | GFLOP/s naive (% peak) | GFLOP/s edgekit "
           "(% peak) | applied |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.source} | {r.runtime} | {r.precision} | - | failed: {r.error} |" + " |" * 9)
            continue
        peak = PEAK_GFLOPS.get((r.precision, r.threads))
        pe = r.parity["edgekit"]

        def pct(which: str) -> str:
            g = r.gflops(which)
            return f"{g:.0f} ({100 * g / peak:.0f}%)" if peak else f"{g:.0f}"

        if r.naive_failed:
            naive = f"does not build ({r.naive_failed[:90]})"
            out.append(f"| {r.source} | {r.runtime} | {r.precision} | {r.threads} | - | {r.edgekit_ms:.2f} | builds "
                       f"| - | {naive} | {pe['cosine_min']:.6f} / {pe['max_abs_rel']:.1e} | {r.gflop:.2f} | - "
                       f"| {pct('edgekit')} | {_short(r.applied)} |")
            continue
        pn = r.parity["naive"]
        ratio = (f"{r.speedup:.2f}x [{r.interval[0]:.2f}, {r.interval[1]:.2f}]" if r.interval else f"{r.speedup:.2f}x")
        ratio = f"**{ratio}**" if r.finding != "within noise" else f"{ratio} within noise"
        noise = f"[{r.noise[1]:.2f}, {r.noise[2]:.2f}]" if r.noise else "-"
        out.append(f"| {r.source} | {r.runtime} | {r.precision} | {r.threads} | {r.naive_ms:.2f} | {r.edgekit_ms:.2f} "
                   f"| {ratio} | {noise} | {pn['cosine_min']:.6f} / {pn['max_abs_rel']:.1e} "
                   f"| {pe['cosine_min']:.6f} / {pe['max_abs_rel']:.1e} | {r.gflop:.2f} | {pct('naive')} "
                   f"| {pct('edgekit')} | {_short(r.applied)} |")
    return "\n".join(out)


def verdict(rows: list[Row]) -> list[str]:
    """The issue's targets, checked on these figures."""
    from edgekit.engines.timing import Ratio

    lines = []
    for r in rows:
        if r.error or r.naive_failed:
            if r.naive_failed:
                lines.append(f"{r.source} {r.runtime} {r.precision} {r.threads}T: the naive export does not build; "
                             f"edgekit's does ({r.edgekit_ms:.2f} ms)")
            continue
        ratio = Ratio(r.speedup, *(r.interval or (r.speedup, r.speedup)))
        tag = f"{r.source} {r.runtime} {r.precision} {r.threads}T: {ratio.text()}"
        windowed = any(w in r.source for w in WINDOWED) and (r.runtime, r.threads) == ("onnx", 2)
        for precision, goal, what in (("fp32", 1.05, "windowed-attention"), ("int8", 1.2, "quantized windowed")):
            if windowed and r.precision == precision:
                lines.append(f"{ratio.against(goal)} the {goal}x {what} target: {tag}")
        if r.finding == "slower":
            lines.append(f"SLOWER (the interval lies below 1): {tag}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated sources (default: zoo models with attention + timm Swin-T, "
                                     "EfficientViT-B0)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--iters", type=int, default=20, help="timed runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default="onnx,openvino")
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="from fp32 (everywhere), bf16 (OpenVINO; runs as f32 on CPUs without bf16), int8 "
                         "(both: the same edgekit quantization of the naive and the rewritten graph)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: perf_counter (default); cpu: the process's CPU time, one thread only: robust to "
                         "other work on a shared machine, which stretches wall time but not CPU time")
    ap.add_argument("--rule", help="time one rule or swap alone: edgekit's export without it against with it")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--from-json", type=Path, help="print the table of figures an earlier --json run wrote "
                                                   "(%% of peak against this CPU's peak, measured now)")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        rows = [Row(**r) for r in data["rows"]]
        measure_peaks(sorted({r.threads for r in rows if r.threads}), {r.precision for r in rows})
        text = (f"{data['environment']}\nFigures of an earlier run (its --json); {peaks_note()}, measured now.\n\n"
                + table(rows) + "\n\n" + "\n".join(f"- {line}" for line in verdict(rows)))
        print(text)
        _docblock.maybe_write(args, text)
        return 0

    sources = args.models.split(",") if args.models else attention_models() + TIMM
    threads = [int(t) for t in args.threads.split(",")]
    if args.clock == "cpu" and threads != [1]:
        ap.error("--clock cpu measures one thread's work: use it with --threads 1")
    start = load_avg()
    measure_peaks(threads, args.precisions.split(","))
    from rich.progress import track

    rows = []
    for source in track(sources, description="naive vs edgekit", transient=True):
        rows.extend(measure(source, args.runtimes.split(","), threads, args.warmup, args.iters,
                            args.precisions.split(","), args.clock, args.rule))
    from _bench import environment  # on sys.path since measure_peaks

    env = environment(("onnxruntime", "openvino"), "threads per row")
    text = (f"{env}\nMedians ({args.clock} clock) of {args.iters} runs after {args.warmup} warm-ups; {start} at the "
            f"start, {load_avg()} at the end; {peaks_note()}.\n"
            + (f"Baseline (naive): edgekit's export without {args.rule}; edgekit: with it. A/A: naive timed twice.\n"
               if args.rule else "Baseline (naive): edgekit.export(rewrite=False), the plain torch.onnx export + "
                                 "onnxslim; edgekit: the target's swaps and rules. A/A: naive timed twice.\n")
            + "\n" + table(rows) + "\n\n" + "\n".join(f"- {line}" for line in verdict(rows)))
    print(text)
    _docblock.maybe_write(args, text)
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}, indent=1))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
