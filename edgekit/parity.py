"""The parity gate: the built artifact against PyTorch, on real images, with explicit tolerances."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edgekit.config import Task, Tolerance

Infer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ParityReport:
    images: int
    cosine_min: float
    cosine_mean: float
    max_abs: float
    max_abs_rel: float  # max abs error / range of the reference output
    rel_l2: float  # max over images of ||a - b|| / ||b||
    agreement: float  # top-1 (classification) or per-pixel label (segmentation) agreement
    agreement_kind: str
    tolerance: dict
    passed: bool
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"] = list(self.failures)
        return d

    def summary(self) -> str:
        return (f"cosine min {self.cosine_min:.6f}, max abs {self.max_abs:.3g} ({self.max_abs_rel:.2e} of range), "
                f"rel L2 {self.rel_l2:.2e}, {self.agreement_kind} agreement {self.agreement * 100:.1f}% on {self.images} images")


def torch_reference(model: nn.Module) -> Infer:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().numpy()

    return run


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], task: Task, tolerance: Tolerance) -> ParityReport:
    """Per-image figures, aggregated worst-case (cosine min, max abs) and mean (agreement)."""
    cosines, abs_errs, rel_abs, rel_l2, agree = [], [], [], [], []
    for ref, out in zip(reference, candidate, strict=True):
        ref = ref.astype(np.float64)
        out = out.astype(np.float64).reshape(ref.shape)
        for r, o in zip(ref, out):  # per image in the batch
            a, b = r.ravel(), o.ravel()
            finite = np.isfinite(b).all()
            denom = np.linalg.norm(a) * np.linalg.norm(b)
            cosines.append(float(a @ b / denom) if denom > 0 and finite else (1.0 if np.array_equal(a, b) else 0.0))
            err = float(np.abs(a - b).max()) if finite else float("inf")
            abs_errs.append(err)
            rel_abs.append(err / max(float(a.max() - a.min()), 1e-12))
            rel_l2.append(float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)) if finite else float("inf"))
            if task is Task.SEGMENTATION:
                agree.append(float((r.argmax(0) == o.argmax(0)).mean()))
            else:
                agree.append(float(r.argmax() == o.argmax()))
    report = dict(images=len(cosines), cosine_min=min(cosines), cosine_mean=float(np.mean(cosines)),
                  max_abs=max(abs_errs), max_abs_rel=max(rel_abs), rel_l2=max(rel_l2), agreement=float(np.mean(agree)),
                  agreement_kind="per-pixel label" if task is Task.SEGMENTATION else "top-1")
    failures = []
    if report["cosine_min"] < tolerance.cosine:
        failures.append(f"cosine {report['cosine_min']:.6f} < {tolerance.cosine}")
    if tolerance.max_abs_rel is not None and report["max_abs_rel"] > tolerance.max_abs_rel:
        failures.append(f"max abs error {report['max_abs_rel']:.2e} of output range > {tolerance.max_abs_rel:.0e}")
    if tolerance.agreement is not None and report["agreement"] < tolerance.agreement:
        failures.append(f"{report['agreement_kind']} agreement {report['agreement'] * 100:.1f}% < {tolerance.agreement * 100:.0f}%")
    return ParityReport(**report, tolerance=asdict(tolerance), passed=not failures, failures=tuple(failures))


def run_parity(reference: Infer, candidate: Infer, inputs: list[np.ndarray], task: Task, tolerance: Tolerance,
               batch: int = 1, progress: Callable[[], None] | None = None) -> ParityReport:
    """Run both on the inputs (grouped into the artifact's batch size) and compare."""
    refs, outs = [], []
    for x in batches(inputs, batch):
        refs.append(reference(x))
        outs.append(candidate(x))
        if progress:
            progress()
    return compare(refs, outs, task, tolerance)


def batches(inputs: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Group (1, C, H, W) inputs into (batch, C, H, W); the last group is padded by repeating."""
    groups = []
    for i in range(0, len(inputs), batch):
        chunk = inputs[i:i + batch]
        chunk = chunk + [chunk[-1]] * (batch - len(chunk))
        groups.append(np.concatenate(chunk, 0))
    return groups
