"""The parity gate: the built artifact against PyTorch, on real images, with explicit tolerances."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn

from edgekit.config import Task, Tolerance

Infer = Callable[[np.ndarray], "np.ndarray | list[np.ndarray]"]  # one output, or every output in order


def as_outputs(value) -> list[np.ndarray]:
    """A model's outputs as a list in output order: a single array is a one-output model."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


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
    agreement: float  # top-1 (classification), per-pixel label (segmentation) or mean cosine (features) agreement
    agreement_kind: str
    outputs: dict = field(default_factory=dict)  # several outputs: each output's figures by name (the worst decides)


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
        if self.reference_problem and not self.outputs:
            return f"no figures: the reference is degenerate on {self.images} images"
        worst = f"worst of {len(self.outputs)} outputs: " if self.outputs else ""
        return (f"{worst}cosine min {self.cosine_min:.6f}, max abs {self.max_abs:.3g} ({self.max_abs_rel:.2e} of "
                f"range), rel L2 {self.rel_l2:.2e}, {self.agreement_kind} agreement {self.agreement * 100:.1f}% on "
                f"{self.images} images")


class TorchReference:
    """The PyTorch model as a reference: (N, C, H, W) in, its output as float32 numpy out (a list of them, in
    output order, for a model with several outputs: a tuple, or a dict by its keys' order).

    ``batchable``: any N works, so a caller may run many images at once (PyTorch's per-module overhead
    dominates small models at batch 1: timm MobileViT-XXS at 64x64 spends ~44 ms an image on 2 cores,
    most of it in its ~420 module calls). ``batch_ok`` records whether a batch gave each image what it
    gets alone (None until :func:`run_reference` checks it once)."""

    batchable = True

    def __init__(self, model: nn.Module):
        self.model = model
        self.batch_ok: bool | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        with torch.no_grad():
            out = self.model(torch.from_numpy(x))
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (tuple, list)):
            return out[0].float().numpy() if len(out) == 1 else [t.float().numpy() for t in out]
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
                out = [np.asarray(o) for o in as_outputs(reference(np.concatenate(group, 0)))]
            except Exception:  # noqa: BLE001 - a model that only runs at batch 1: one input at a time below
                out = None
        whole = out is not None and all(o.shape[:1] == (images,) for o in out)
        if whole and getattr(reference, "batch_ok", True) is None:
            alone = [np.asarray(o) for o in as_outputs(reference(group[0]))]
            reference.batch_ok = len(alone) == len(out) and all(
                o[:len(group[0])].shape == a.shape
                and float(np.abs(o[:len(group[0])] - a).max()) <= 1e-5 * max(float(np.ptp(a)) if a.size else 0.0, 1e-12)
                for o, a in zip(out, alone))
            if not reference.batch_ok:
                return [reference(x) for x in inputs]
        if whole:
            bounds = np.cumsum([0] + [len(x) for x in group])
            several = len(out) > 1
            outs += [[o[a:b] for o in out] if several else out[0][a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        else:
            outs += [reference(x) for x in group]
        start = end
    return outs


def compare(reference: list, outputs: list, task: Task, names: tuple[str, ...] | None = None) -> Metrics:
    """The one comparison of outputs with reference outputs (the parity gate, quantization scoring and
    ``evaluate`` its :func:`agreement`): per image of each batch, aggregated worst-case and mean. An output that is not
    finite has cosine 0 and infinite errors; two all-zero outputs are equal (cosine 1).

    Each element of ``reference`` / ``outputs`` is one batch's output, or the list of a multi-output model's
    outputs (:func:`as_outputs`); then every output is compared on its own, its figures are kept under its name
    (``names``, default ``output0``...) and the worst output's figures are the result's."""
    refs = [as_outputs(r) for r in reference]
    outs = [as_outputs(o) for o in outputs]
    count = len(refs[0]) if refs else 1
    if any(len(o) != count for o in outs) or any(len(r) != count for r in refs):
        got = sorted({len(o) for o in outs})
        raise ValueError(f"the artifact returns {', '.join(map(str, got))} outputs, the reference {count}")
    per = [_compare_one([r[k] for r in refs], [o[k] for o in outs], task) for k in range(count)]
    if count == 1:
        return per[0]
    names = tuple(names) if names is not None else tuple(f"output{k}" for k in range(count))
    figures = {n: {k: v for k, v in asdict(m).items() if k not in ("images", "agreement_kind", "outputs")}
               for n, m in zip(names, per, strict=True)}
    return Metrics(images=per[0].images, cosine_min=min(m.cosine_min for m in per),
                   cosine_mean=min(m.cosine_mean for m in per), max_abs=max(m.max_abs for m in per),
                   max_abs_rel=max(m.max_abs_rel for m in per), rel_l2=max(m.rel_l2 for m in per),
                   agreement=min(m.agreement for m in per), agreement_kind=per[0].agreement_kind, outputs=figures)


def _compare_one(reference: list[np.ndarray], outputs: list[np.ndarray], task: Task) -> Metrics:
    cosines, abs_errs, rel_abs, rel_l2, agree = [], [], [], [], []
    for ref, out in zip(reference, outputs, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64).reshape(ref.shape)
        for r, o in zip(ref, out):  # per image in the batch
            cos = cosine(r, o)
            cosines.append(cos)
            finite = np.isfinite(o).all()
            err = float(np.abs(r - o).max()) if finite else float("inf")
            abs_errs.append(err)
            rel_abs.append(err / max(float(r.max() - r.min()), 1e-12))
            rel_l2.append(float(np.linalg.norm(r - o) / max(np.linalg.norm(r), 1e-12)) if finite else float("inf"))
            agree.append(agreement(r, o, task))
    return Metrics(images=len(cosines), cosine_min=min(cosines), cosine_mean=float(np.mean(cosines)),
                   max_abs=max(abs_errs), max_abs_rel=max(rel_abs), rel_l2=max(rel_l2), agreement=float(np.mean(agree)),
                   agreement_kind=AGREEMENT_KIND[task])


AGREEMENT_KIND = {Task.CLASSIFICATION: "top-1", Task.SEGMENTATION: "per-pixel label", Task.FEATURES: "cosine"}


def cosine(reference: np.ndarray, output: np.ndarray) -> float:
    """Cosine similarity of two outputs, flattened; 0 when ``output`` is not finite, 1 for two equal zero outputs."""
    a, b = np.asarray(reference, dtype=np.float64).ravel(), np.asarray(output, dtype=np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom > 0 and np.isfinite(b).all():
        return float(a @ b / denom)
    return 1.0 if np.array_equal(a, b) else 0.0


def agreement(reference: np.ndarray, output: np.ndarray, task: Task) -> float:
    """One image's agreement: top-1 (1.0 or 0.0) for classification logits, the share of pixels with the
    same arg-max class for segmentation logits (C, H, W), the cosine for features (which have no labels)."""
    if task is Task.FEATURES:
        return cosine(reference, output)
    if task is Task.SEGMENTATION:
        return float((reference.argmax(0) == output.argmax(0)).mean())
    return float(reference.argmax() == output.argmax())


def check(metrics: Metrics, tolerance: Tolerance, skip: frozenset[str] = frozenset()) -> ParityReport:
    """The gate: ``metrics`` against ``tolerance``, with one line per figure outside it (for several outputs,
    each output on its own, the line naming it; outputs in ``skip`` are not gated)."""
    failures = []
    for name, figures in (metrics.outputs or {"": asdict(metrics)}).items():
        if name not in skip:
            failures += [f"{name}: {line}" if name else line
                         for line in _outside(figures, tolerance, metrics.agreement_kind)]
    return ParityReport(**asdict(metrics), tolerance=asdict(tolerance), passed=not failures,
                        failures=tuple(failures))


def _outside(figures: dict, tolerance: Tolerance, agreement_kind: str) -> list[str]:
    lines = []
    if figures["cosine_min"] < tolerance.cosine:
        lines.append(f"cosine {figures['cosine_min']:.6f} < {tolerance.cosine}")
    if tolerance.max_abs_rel is not None and figures["max_abs_rel"] > tolerance.max_abs_rel:
        lines.append(f"max abs error {figures['max_abs_rel']:.2e} of output range > {tolerance.max_abs_rel:.0e}")
    if tolerance.agreement is not None and figures["agreement"] < tolerance.agreement:
        lines.append(f"{agreement_kind} agreement {figures['agreement'] * 100:.1f}% < {tolerance.agreement * 100:.0f}%")
    return lines


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
               batch: int = 1, progress: Callable[[], None] | None = None,
               names: tuple[str, ...] | None = None) -> ParityReport:
    """Run both on the inputs (grouped into the artifact's batch size) and compare, every output on its own
    (``names`` them; the worst output decides).

    A degenerate reference output (:func:`degenerate`) fails the gate with that diagnosis instead of figures
    computed on noise, unless the artifact reproduces it exactly (then it passes, with the diagnosis as a
    warning)."""
    groups = batches(inputs, batch)
    refs, outs = run_reference(reference, groups), []
    for x in groups:
        outs.append(candidate(x))
        if progress:
            progress()
    with np.errstate(invalid="ignore", over="ignore"):
        metrics = compare(refs, outs, task, names)
    labels = tuple(metrics.outputs) or ("",)
    problems, warnings, diagnoses, skip = [], [], [], set()
    for k, name in enumerate(labels):
        ref_k = [as_outputs(r)[k] for r in refs]
        why = degenerate(ref_k)
        if why is None:
            continue
        why = f"{name}: {why}" if name else why
        skip.add(name)
        diagnoses.append(why)
        out_k = [as_outputs(o)[k] for o in outs]
        if all(np.array_equal(np.asarray(r), np.asarray(o).reshape(np.shape(r)), equal_nan=True)
               for r, o in zip(ref_k, out_k)):
            warnings.append(f"{why} (the artifact reproduces it exactly)")
        else:
            problems.append(why)
    report = check(metrics, tolerance, frozenset(skip))
    if not skip:
        return report
    failures = tuple(problems) + report.failures
    return replace(report, passed=not failures, failures=failures, warnings=tuple(warnings),
                   reference_problem="; ".join(diagnoses))


def batches(inputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Group (1, C, H, W) inputs into (batch, C, H, W); the last group is padded by repeating."""
    groups = []
    for i in range(0, len(inputs), batch):
        chunk = inputs[i:i + batch]
        chunk = chunk + [chunk[-1]] * (batch - len(chunk))
        groups.append(np.concatenate(chunk, 0))
    return groups
