"""The parity gate: the built artifact against PyTorch, on real images, with explicit tolerances."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn

from edgekit.config import Task, Tolerance

Infer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metrics:
    """How far outputs are from reference outputs: worst case over images (cosine min, max abs, rel L2) and
    the mean (cosine mean, agreement)."""

    images: int
    cosine_min: float
    cosine_mean: float
    max_abs: float
    max_abs_rel: float  # max abs error / range of the reference output
    rel_l2: float  # max over images of ||a - b|| / ||b||
    agreement: float  # top-1 (classification) or per-pixel label (segmentation) agreement
    agreement_kind: str


@dataclass(frozen=True)
class ParityReport(Metrics):
    tolerance: dict = field(default_factory=dict)
    passed: bool = False
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. a degenerate reference the artifact reproduces exactly
    reference_problem: str = ""  # why the reference gives nothing to compare (then the figures mean nothing)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"] = list(self.failures)
        d["warnings"] = list(self.warnings)
        return d

    def summary(self) -> str:
        if self.reference_problem:
            return f"no figures: the reference is degenerate on {self.images} images"
        return (f"cosine min {self.cosine_min:.6f}, max abs {self.max_abs:.3g} ({self.max_abs_rel:.2e} of range), "
                f"rel L2 {self.rel_l2:.2e}, {self.agreement_kind} agreement {self.agreement * 100:.1f}% on {self.images} images")


class TorchReference:
    """The PyTorch model as a reference: (N, C, H, W) in, its (first) output as float32 numpy out.

    ``batchable``: any N works, so a caller may run many images at once (PyTorch's per-module overhead
    dominates small models at batch 1: timm MobileViT-XXS at 64x64 spends ~44 ms an image on 2 cores,
    most of it in its ~420 module calls). ``batch_ok`` records whether a batch gave each image what it
    gets alone (None until :func:`run_reference` checks it once)."""

    batchable = True

    def __init__(self, model: nn.Module):
        self.model = model
        self.batch_ok: bool | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.model(torch.from_numpy(x))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().numpy()


def torch_reference(model: nn.Module) -> TorchReference:
    return TorchReference(model)


REFERENCE_CHUNK = 8  # images a batchable reference runs at once


def run_reference(reference: Infer, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """``[reference(x) for x in inputs]`` (each x (b, C, H, W)); a ``batchable`` reference runs consecutive
    inputs together, up to :data:`REFERENCE_CHUNK` images a call, and one at a time where that fails (a model
    that only runs at batch 1), gives another leading size, or, checked once per reference, gives the first
    input another output than it gets alone (a model whose images interact across the batch: the artifact
    was built for the batch it was built for, and is compared with what PyTorch computes at that batch)."""
    if not getattr(reference, "batchable", False) or getattr(reference, "batch_ok", None) is False:
        return [reference(x) for x in inputs]
    outs: list[np.ndarray] = []
    start = 0
    while start < len(inputs):
        end, images = start, 0
        while end < len(inputs) and (end == start or images + len(inputs[end]) <= REFERENCE_CHUNK):
            images += len(inputs[end])
            end += 1
        group = inputs[start:end]
        out = None
        if len(group) > 1:
            try:
                out = np.asarray(reference(np.concatenate(group, 0)))
            except Exception:  # noqa: BLE001 - a model that only runs at batch 1: one input at a time below
                out = None
        if out is not None and out.shape[:1] == (images,) and getattr(reference, "batch_ok", True) is None:
            alone = np.asarray(reference(group[0]))
            first = out[:len(group[0])]
            span = max(float(np.ptp(alone)) if alone.size else 0.0, 1e-12)
            reference.batch_ok = first.shape == alone.shape and float(np.abs(first - alone).max()) <= 1e-5 * span
            if not reference.batch_ok:
                return [reference(x) for x in inputs]
        if out is not None and out.shape[:1] == (images,):
            bounds = np.cumsum([0] + [len(x) for x in group])
            outs += [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        else:
            outs += [reference(x) for x in group]
        start = end
    return outs


def compare(reference: list[np.ndarray], outputs: list[np.ndarray], task: Task) -> Metrics:
    """The one comparison of outputs with reference outputs (the parity gate, quantization scoring and
    ``evaluate`` its :func:`agreement`): per image of each batch, aggregated worst-case and mean. An output that is not
    finite has cosine 0 and infinite errors; two all-zero outputs are equal (cosine 1)."""
    cosines, abs_errs, rel_abs, rel_l2, agree = [], [], [], [], []
    for ref, out in zip(reference, outputs, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64).reshape(ref.shape)
        for r, o in zip(ref, out):  # per image in the batch
            a, b = r.ravel(), o.ravel()
            finite = np.isfinite(b).all()
            denom = np.linalg.norm(a) * np.linalg.norm(b)
            cosines.append(float(a @ b / denom) if denom > 0 and finite else (1.0 if np.array_equal(a, b) else 0.0))
            err = float(np.abs(a - b).max()) if finite else float("inf")
            abs_errs.append(err)
            rel_abs.append(err / max(float(a.max() - a.min()), 1e-12))
            rel_l2.append(float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)) if finite else float("inf"))
            agree.append(agreement(r, o, task))
    return Metrics(images=len(cosines), cosine_min=min(cosines), cosine_mean=float(np.mean(cosines)),
                   max_abs=max(abs_errs), max_abs_rel=max(rel_abs), rel_l2=max(rel_l2), agreement=float(np.mean(agree)),
                   agreement_kind="per-pixel label" if task is Task.SEGMENTATION else "top-1")


def agreement(reference: np.ndarray, output: np.ndarray, task: Task) -> float:
    """One image's label agreement: top-1 (1.0 or 0.0) for classification logits, the share of pixels with the
    same arg-max class for segmentation logits (C, H, W)."""
    if task is Task.SEGMENTATION:
        return float((reference.argmax(0) == output.argmax(0)).mean())
    return float(reference.argmax() == output.argmax())


def check(metrics: Metrics, tolerance: Tolerance) -> ParityReport:
    """The gate: ``metrics`` against ``tolerance``, with one line per figure outside it."""
    failures = []
    if metrics.cosine_min < tolerance.cosine:
        failures.append(f"cosine {metrics.cosine_min:.6f} < {tolerance.cosine}")
    if tolerance.max_abs_rel is not None and metrics.max_abs_rel > tolerance.max_abs_rel:
        failures.append(f"max abs error {metrics.max_abs_rel:.2e} of output range > {tolerance.max_abs_rel:.0e}")
    if tolerance.agreement is not None and metrics.agreement < tolerance.agreement:
        failures.append(f"{metrics.agreement_kind} agreement {metrics.agreement * 100:.1f}% < "
                        f"{tolerance.agreement * 100:.0f}%")
    return ParityReport(**asdict(metrics), tolerance=asdict(tolerance), passed=not failures,
                        failures=tuple(failures))


# Below this magnitude a float32 output is rounding noise, not a signal: every op rounds to 2^-24 (6e-8) of
# its operands, and over a network's depth activations of order 1 leave errors of 1e-7 to 1e-6 in absolute
# terms, so a cosine between two outputs this small compares rounding, not the model.
DEGENERATE_MAGNITUDE = 1e-6


def degenerate(reference: list[np.ndarray]) -> str | None:
    """Why the PyTorch outputs give the gate nothing to compare (not finite, numerically zero, or the same
    value everywhere in every image), or None when they are a signal."""
    values = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in reference])
    if values.size == 0:
        return "the PyTorch model returned an empty output"
    bad = int((~np.isfinite(values)).sum())
    if bad:
        return (f"the PyTorch model's own output is not finite ({bad} of {values.size} values NaN or infinite): "
                f"fix the model (or its weights) first; there is nothing to compare the export with")
    peak = float(np.abs(values).max())
    if peak < DEGENERATE_MAGNITUDE:
        return (f"the PyTorch output is numerically zero (largest magnitude {peak:.1e}, below fp32 rounding noise "
                f"of {DEGENERATE_MAGNITUDE:g}): typical of randomly initialised or zero-initialised heads; "
                f"load trained weights (--checkpoint) or check the model's output")
    spread = max(float(np.ptp(np.asarray(r, dtype=np.float64).reshape(len(r), -1), axis=1).max()) for r in reference)
    if spread <= 1e-7 * peak:
        return (f"the PyTorch output is constant (every value {values[0]:.6g} on every image): a dead or "
                f"zero-initialised head; load trained weights (--checkpoint) or check the model's output")
    return None


def run_parity(reference: Infer, candidate: Infer, inputs: list[np.ndarray], task: Task, tolerance: Tolerance,
               batch: int = 1, progress: Callable[[], None] | None = None) -> ParityReport:
    """Run both on the inputs (grouped into the artifact's batch size) and compare.

    A degenerate reference (:func:`degenerate`) fails the gate with that diagnosis instead of figures computed
    on noise, unless the artifact reproduces it exactly (then it passes, with the diagnosis as a warning)."""
    groups = batches(inputs, batch)
    refs, outs = run_reference(reference, groups), []
    for x in groups:
        outs.append(candidate(x))
        if progress:
            progress()
    with np.errstate(invalid="ignore", over="ignore"):
        report = check(compare(refs, outs, task), tolerance)
    why = degenerate(refs)
    if why is None:
        return report
    exact = all(np.array_equal(np.asarray(r), np.asarray(o).reshape(np.shape(r)), equal_nan=True)
                for r, o in zip(refs, outs))
    if exact:
        return replace(report, passed=True, failures=(), reference_problem=why,
                       warnings=(f"{why} (the artifact reproduces it exactly)",))
    return replace(report, passed=False, failures=(why,), reference_problem=why)


def batches(inputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Group (1, C, H, W) inputs into (batch, C, H, W); the last group is padded by repeating."""
    groups = []
    for i in range(0, len(inputs), batch):
        chunk = inputs[i:i + batch]
        chunk = chunk + [chunk[-1]] * (batch - len(chunk))
        groups.append(np.concatenate(chunk, 0))
    return groups
