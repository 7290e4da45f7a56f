"""Where a reduced-precision graph leaves its fp32 graph, and why: the divergence locator.

The fp16 or int8 graph of an export and the fp32 graph it was made from share their tensor names (the fp16
conversion and the QDQ quantizer add nodes but keep the names of the tensors they wrap). Both run with one
*tap* per PyTorch module exposed as an extra graph output: the last tensor in graph order that a node of that
module writes (the exporter names nodes after their module: ``/stages.1/blocks.0/norm/Div`` belongs to
``stages.1.blocks.0.norm``, :func:`edgekit.profiling.layers.module_segments`). On the parity images each tap
gets its figures (worst-image cosine, max abs error over the fp32 range, non-finite values, values at fp16's
limit), and the first tap in graph order whose figures break the precision's tolerance is the *first
divergence*. :mod:`edgekit.debug.signatures` says why, from the fp32 values there and the graph around it.

The taps run on the runtime the bundle runs on (ONNX Runtime; OpenVINO from the same ONNX with the bundle's
inference precision), so what the locator sees is what the gate saw; exposing a tensor can stop a runtime from
fusing across it, which the figures of that tap then do not include.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from edgekit.config import Precision, Tolerance
from edgekit.debug.graph_taps import FLOAT_TYPES, graph_tensors, run_taps, tensor_types
from edgekit.profiling.layers import module_segments

FP16_MAX = 65504.0
_QDQ = {"QuantizeLinear", "DequantizeLinear", "Cast"}  # what the precision conversions add around a tensor


@dataclass(frozen=True)
class Tap:
    """One PyTorch module's output in the graph: ``tensor``, written by ``node``; ``nodes``: every node of the
    module (what a float island for it keeps)."""

    module: str
    tensor: str
    node: str
    op_type: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class TapFigures:
    module: str
    tensor: str
    op_type: str
    cosine_min: float
    max_abs_rel: float
    nonfinite: int  # values that are NaN or infinite in the candidate
    at_fp16_limit: int  # values of the fp32 graph beyond fp16's 65504
    fp32_peak: float  # largest magnitude in the fp32 graph there

    def breaks(self, tolerance: Tolerance) -> bool:
        return self.nonfinite > 0 or self.cosine_min < tolerance.cosine


@dataclass
class LocatorReport:
    precision: str
    runtime: str
    images: int
    taps: list[TapFigures] = field(default_factory=list)
    first: TapFigures | None = None
    diagnosis: dict | None = None  # signatures.Diagnosis.to_dict()
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"precision": self.precision, "runtime": self.runtime, "images": self.images,
                "seconds": round(self.seconds, 2), "first_divergence": asdict(self.first) if self.first else None,
                "diagnosis": self.diagnosis, "taps": [asdict(t) for t in self.taps]}

    def line(self) -> str:
        """One line for an error message: where it diverges first and what to do."""
        d = self.diagnosis or {}
        if self.first is None:
            return d.get("cause") or "no module diverges beyond the tolerance layer by layer"
        return (f"first diverging module: {self.first.module} ({self.first.op_type}, cosine "
                f"{self.first.cosine_min:.4f}){': ' + d['cause'] if d.get('cause') else ''}")


def taps(proto: onnx.ModelProto) -> list[Tap]:
    """One tap per module, in graph order of the module's last node, for float tensors only."""
    types = tensor_types(proto)
    by_module: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        units = module_segments(node.name)
        if units and node.op_type not in _QDQ:
            by_module.setdefault(".".join(units), []).append(node)
    found = []
    for module, nodes in by_module.items():
        last = next((n for n in reversed(nodes) if n.output and types.get(n.output[0]) in FLOAT_TYPES), None)
        if last is not None:
            found.append((list(proto.graph.node).index(last), Tap(module, last.output[0], last.name, last.op_type,
                                                                   tuple(n.name for n in nodes))))
    return [t for _, t in sorted(found, key=lambda p: p[0])]


def locate(fp32: onnx.ModelProto, candidate, precision: Precision, runtime: str, options: dict,
           inputs: list[np.ndarray], tolerance: Tolerance | None = None, gate_failed: bool = False) -> LocatorReport:
    """Compare ``candidate`` (the fp16 / int8 graph: ONNX, or an OpenVINO IR path) with ``fp32`` tap by tap on
    ``inputs``; the first tap that breaks ``tolerance`` (the precision's default) is diagnosed
    (:func:`edgekit.debug.signatures.diagnose`).
    int8 error diagnosed as mere rounding, or a failed gate (``gate_failed``) no tap explains, is traced back
    to the module reading an outlier-dominated tensor, where there is one
    (:func:`edgekit.debug.signatures.outlier_upstream`)."""
    from edgekit.debug.signatures import diagnose

    start = time.perf_counter()
    tolerance = tolerance or Tolerance.default(precision)
    present = graph_tensors(candidate)
    points = [t for t in taps(fp32) if t.tensor in present]
    tensors = [t.tensor for t in points]
    ref = run_taps(fp32, tensors, runtime, {**options, "inference_precision": "f32"}, inputs)
    got = run_taps(candidate, tensors, runtime, options, inputs)
    report = LocatorReport(precision.value, runtime, len(inputs))
    for tap in points:
        figures = _figures(tap, [r[tap.tensor] for r in ref], [g[tap.tensor] for g in got])
        report.taps.append(figures)
        if report.first is None and figures.breaks(tolerance):
            report.first = figures
            report.diagnosis = diagnose(tap, fp32, [r[tap.tensor] for r in ref], [g[tap.tensor] for g in got],
                                        precision, runtime, inputs).to_dict()
    if precision is Precision.INT8 and (report.first is not None or gate_failed) \
            and (report.diagnosis or {}).get("kind", "rounding") == "rounding":
        from edgekit.debug.signatures import outlier_upstream

        # up to the first divergence (all taps when none breaks alone but the gate failed on the output)
        upto = points[:points.index(next(t for t in points if t.tensor == report.first.tensor)) + 1] \
            if report.first else points
        found = outlier_upstream(fp32, upto, runtime, inputs)
        if found is not None:
            report.diagnosis = found.to_dict()
    report.seconds = time.perf_counter() - start
    return report


def _figures(tap: Tap, ref: list[np.ndarray], got: list[np.ndarray]) -> TapFigures:
    from edgekit.stages.parity import cosine

    cosines, errs, nonfinite, limit, peak = [], [], 0, 0, 0.0
    for r, g in zip(ref, got):
        r64, g64 = r.astype(np.float64), g.astype(np.float64).reshape(r.shape)
        finite = np.isfinite(g64)
        nonfinite += int((~finite).sum())
        limit += int((np.abs(r64) > FP16_MAX).sum())
        peak = max(peak, float(np.abs(r64).max(initial=0.0)))
        for a, b in zip(r64, g64):  # per image
            cosines.append(cosine(a, b))
        span = max(float(r64.max() - r64.min()) if r64.size else 0.0, 1e-12)
        errs.append(float(np.abs(np.where(finite, g64, 0) - r64).max(initial=0.0)) / span if finite.all()
                    else float("inf"))
    return TapFigures(tap.module, tap.tensor, tap.op_type, min(cosines) if cosines else 1.0, max(errs, default=0.0),
                      nonfinite, limit, peak)


def locate_against_torch(model, proto: onnx.ModelProto, runtime: str, options: dict, inputs: list[np.ndarray],
                         tolerance: Tolerance | None = None) -> LocatorReport:
    """An fp32 failure, module by module: each tap of the exported graph against the output of the PyTorch
    module of the same path (a forward hook on the deploy-mode model), where both have the same shape. The
    divergence is the first tap from which every later one breaks ``tolerance`` (fp32's): a single tap that
    differs while later ones agree is the exporter's doing, not an error (a Conv named after its module with the
    following BatchNorm folded in holds what PyTorch's BatchNorm, not its Conv, returns)."""
    import torch

    start = time.perf_counter()
    tolerance = tolerance or Tolerance.default(Precision.FP32)
    modules = dict(model.named_modules())
    points = [t for t in taps(proto) if t.module in modules]
    captured: dict[str, list[np.ndarray]] = {t.module: [] for t in points}
    hooks = []
    for tap in points:
        def hook(_module, _args, out, name=tap.module):
            first = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(first, torch.Tensor):
                captured[name].append(first.detach().float().numpy())
        hooks.append(modules[tap.module].register_forward_hook(hook))
    try:
        with torch.no_grad():
            for x in inputs:
                model(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    points = [t for t in points if len(captured[t.module]) == len(inputs)]  # a module called once per image
    got = run_taps(proto, [t.tensor for t in points], runtime, options, inputs)
    report = LocatorReport(Precision.FP32.value, runtime, len(inputs))
    for tap in points:
        ref = captured[tap.module]
        out = [g[tap.tensor] for g in got]
        if any(r.shape != o.shape for r, o in zip(ref, out)):
            continue  # the graph holds this module's output in another layout: not comparable
        report.taps.append(_figures(tap, ref, out))
    persistent = None
    for figures in reversed(report.taps):
        if not figures.breaks(tolerance):
            break
        persistent = figures
    if persistent is not None:
        report.first = persistent
        report.diagnosis = {"kind": "export_differs", "module": persistent.module, "keep_fp": [],
                            "cause": f"the exported graph stops computing what PyTorch's {persistent.module} "
                                     f"computes (cosine {persistent.cosine_min:.6f} against its output), and every "
                                     f"module after it differs too", "detail": {}}
    report.seconds = time.perf_counter() - start
    return report
