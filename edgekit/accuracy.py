"""Accuracy of a bundle on a labeled folder, and its agreement with the fp32 model (`edgekit evaluate`).

Folder layouts (see docs/quantization.md; a features bundle takes any folder of images, as features have
no labels: it is scored by its agreement with the fp32 reference, per output):

- classification: ``DIR/<class>/<image>`` — one subfolder per class. Folders named by integers
  are those class indices; otherwise the names, sorted, are classes 0, 1, ... (torchvision's
  ImageFolder convention).
- segmentation: ``DIR/images/<stem>.<ext>`` and ``DIR/masks/<stem>.png`` — masks are single-channel
  PNG label maps at any resolution (the logits are resized bilinearly to the mask's size);
  255 marks pixels to ignore.

The reference for agreement is, in order: an explicit reference (a bundle directory or a model
source), the fp32 bundle an int8 bundle was quantized from (recorded in its manifest), or the
PyTorch model the bundle was exported from (its manifest's source and checkpoint).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.calib import IMAGE_SUFFIXES, read_image
from edgekit.config import Task
from edgekit.errors import UsageError
from edgekit.manifest import Manifest
from edgekit.progress import Reporter

IGNORE_LABEL = 255
Infer = Callable[[np.ndarray], np.ndarray]  # preprocessed (1, 3, H, W) -> logits


@dataclass(frozen=True)
class EvalReport:
    task: str
    images: int
    metric: str  # "top-1" or "mIoU"
    value: float  # top-1 in [0, 1] or mIoU in [0, 1]
    agreement: float | None  # with the reference: top-1 or per-pixel label agreement, in [0, 1]
    reference: str  # what the agreement is measured against ("" when none)
    reference_value: float | None  # the reference's own metric on the same images
    outputs: dict | None = None  # features: each output's agreement with the reference, by name

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.outputs is not None:
            each = ", ".join(f"{name} {o['cosine_mean']:.6f} (min {o['cosine_min']:.6f})"
                             for name, o in self.outputs.items())
            return f"cosine with the reference on {self.images} images, per output: {each}"
        s = f"{self.metric} {self._fmt(self.value)} on {self.images} images"
        if self.reference_value is not None:
            s += f" (fp32 reference {self._fmt(self.reference_value)}, drop {self._fmt(self.reference_value - self.value)})"
        if self.agreement is not None:
            s += f", agreement with the reference {self.agreement * 100:.2f}%"
        return s

    def _fmt(self, v: float) -> str:
        return f"{v * 100:.2f}%" if self.metric == "top-1" else f"{v:.4f}"


@dataclass
class LabeledSet:
    """Images (uint8 RGB) with class indices (classification) or label maps (segmentation)."""

    task: Task
    paths: list[Path]
    labels: list  # int per image, or a path to the mask per image

    def __len__(self) -> int:
        return len(self.paths)

    def label(self, i: int):
        if self.task is Task.CLASSIFICATION:
            return self.labels[i]
        from PIL import Image

        try:
            with Image.open(self.labels[i]) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise UsageError(f"mask {self.labels[i]} is {im.mode}; masks must be single-channel label maps (PNG mode L or P)")
                return np.asarray(im).astype(np.int64)
        except OSError as e:
            raise UsageError(f"cannot read mask {self.labels[i]}: {e.__class__.__name__}") from None


def read_labeled_folder(data: str | Path, task: Task) -> LabeledSet:
    """Read the layout for ``task`` (paths only; images are decoded while evaluating)."""
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"evaluation data {root} is not a directory")
    if task is Task.SEGMENTATION:
        img_dir, mask_dir = root / "images", root / "masks"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise UsageError(f"segmentation data {root} must hold images/ and masks/ (PNG label maps with the same stems)")
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UsageError(f"{img_dir} holds no images")
        masks = []
        for p in images:
            m = mask_dir / f"{p.stem}.png"
            if not m.is_file():
                raise UsageError(f"image {p.name} has no mask {m}")
            masks.append(m)
        return LabeledSet(task, images, masks)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise UsageError(f"classification data {root} must hold one subfolder of images per class")
    if all(c.isdigit() for c in classes):
        index = {c: int(c) for c in classes}
    else:
        index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for c in classes:
        for p in sorted((root / c).rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                paths.append(p)
                labels.append(index[c])
    if not paths:
        raise UsageError(f"classification data {root} has class folders but no images in them")
    return LabeledSet(task, paths, labels)


def mean_iou(pred: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Mean IoU over classes present in prediction or target; pixels labeled 255 are ignored."""
    return float(np.nanmean(_iou(confusion(pred, target, num_classes))))


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = target, columns = prediction."""
    keep = target != IGNORE_LABEL
    t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
    if t.size and (t.max() >= num_classes):
        raise UsageError(f"mask holds label {int(t.max())} but the model has {num_classes} classes")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _iou(conf: np.ndarray) -> np.ndarray:
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def _resize_logits(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(1, C, h, w) -> (C, H, W), bilinear like the models' training-time upsampling."""
    if logits.shape[-2:] == tuple(size):
        return logits[0]
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()


def evaluate_fn(infer: Infer, data: LabeledSet, preprocess, num_classes: int, reference: Infer | None = None,
                limit: int | None = None, advance=None) -> tuple[float, float | None, float | None, int]:
    """(metric, agreement with reference, reference metric, images) for ``infer`` on ``data``. Agreement is the
    parity gate's (:func:`edgekit.stages.parity.agreement`), per image; for segmentation at the label's resolution,
    weighted by pixels."""
    from edgekit.stages.parity import agreement as agreement_of

    n = len(data) if limit is None else min(limit, len(data))
    correct = ref_correct = 0
    agree = total_px = 0.0
    conf = np.zeros((num_classes, num_classes), np.int64)
    ref_conf = np.zeros_like(conf)
    for i, x, ref in _with_reference(data, preprocess, reference, n):
        out = infer(x)
        label = data.label(i)
        if data.task is Task.CLASSIFICATION:
            logits = np.asarray(out).reshape(1, -1)[:, :num_classes]
            correct += int(logits.argmax()) == label
            if ref is not None:
                ref_logits = np.asarray(ref).reshape(1, -1)[:, :num_classes]
                ref_correct += int(ref_logits.argmax()) == label
                agree += agreement_of(ref_logits[0], logits[0], data.task)
        else:
            logits = _resize_logits(out[:1], label.shape)
            conf += confusion(logits.argmax(0), label, num_classes)
            if ref is not None:
                ref_logits = _resize_logits(ref[:1], label.shape)
                ref_conf += confusion(ref_logits.argmax(0), label, num_classes)
                agree += agreement_of(ref_logits, logits, data.task) * label.size
                total_px += label.size
        if advance:
            advance()
    if data.task is Task.CLASSIFICATION:
        metric = correct / n
        ref_metric = ref_correct / n if reference is not None else None
        agreement = agree / n if reference is not None else None
    else:
        metric = float(np.nanmean(_iou(conf)))
        ref_metric = float(np.nanmean(_iou(ref_conf))) if reference is not None else None
        agreement = agree / total_px if reference is not None else None
    return metric, agreement, ref_metric, n


def _with_reference(data: LabeledSet, preprocess, reference: Infer | None, n: int):
    """(index, preprocessed image, the reference's output or None) for the first ``n`` images; a reference
    that takes any batch (a PyTorch model) runs :data:`~edgekit.stages.parity.REFERENCE_CHUNK` images at a time."""
    from edgekit.stages.parity import REFERENCE_CHUNK, run_reference

    chunk = REFERENCE_CHUNK if getattr(reference, "batchable", False) else 1
    for start in range(0, n, chunk):
        xs = [preprocess(read_image(data.paths[i])) for i in range(start, min(start + chunk, n))]
        refs = run_reference(reference, xs) if reference is not None else [None] * len(xs)
        for k, (x, ref) in enumerate(zip(xs, refs)):
            yield start + k, x, ref


def evaluate_bundle(bundle: str | Path, data: str | Path, reference: str | Path | None = None, limit: int | None = None,
             threads: int | None = None, reporter: Reporter | None = None) -> EvalReport:
    """Top-1 (classification) or mIoU (segmentation) of ``bundle`` on the labeled folder ``data``,
    and its agreement with the fp32 reference (see the module docstring for which)."""
    from edgekit import runtime

    if limit is not None and limit <= 0:
        raise UsageError(f"--limit must be positive, got {limit}")
    rep = reporter or Reporter()
    runner = runtime.load(bundle, threads=threads)
    try:
        task = runner.task
        if task is Task.FEATURES:
            return _evaluate_features(runner, data, reference, limit, threads, rep)
        labeled = read_labeled_folder(data, task)
        ref_fn, ref_name = _reference(runner.manifest, reference, threads)
        num_classes = int(runner.manifest.model.num_classes)
        n = len(labeled) if limit is None else min(limit, len(labeled))
        with rep.step(f"evaluate on {n} images", total=n):
            metric, agreement, ref_metric, n = evaluate_fn(_batched(runner), labeled, runner.preprocess, num_classes,
                                                           ref_fn, limit, rep.advance)
    finally:
        runner.close()
    return EvalReport(task.value, n, "top-1" if task is Task.CLASSIFICATION else "mIoU", metric, agreement, ref_name,
                      ref_metric)


def _evaluate_features(runner, data: str | Path, reference, limit: int | None, threads: int | None,
                       rep: Reporter) -> EvalReport:
    """A features bundle on a folder of images: each output's cosine agreement with the fp32 reference (the
    parity gate's :func:`~edgekit.stages.parity.compare`), as features have no labels to score."""
    from edgekit.stages.parity import compare, run_reference

    root = Path(data)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) \
        if root.is_dir() else []
    if not paths:
        raise UsageError(f"evaluation data {root} holds no images; a features bundle is evaluated on a folder of "
                         f"images (no labels needed) against its fp32 reference")
    ref_fn, ref_name = _reference(runner.manifest, reference, threads)
    if ref_fn is None:
        raise UsageError(f"bundle {runner.path} outputs features, which have no labels: evaluate measures their "
                         f"agreement with the fp32 model, and none was found; pass --reference (an fp32 bundle or "
                         f"the model source)")
    paths = paths[:limit] if limit is not None else paths
    names = tuple(runner.output_names)
    run = _batched(runner, every_output=True)
    refs, outs = [], []
    with rep.step(f"evaluate on {len(paths)} images", total=len(paths)):
        for path in paths:
            x = runner.preprocess(read_image(path))
            outs.append(run(x))
            refs.append(run_reference(ref_fn, [x])[0])
            rep.advance()
    m = compare(refs, outs, Task.FEATURES, names)
    per = m.outputs or {names[0]: {"cosine_min": m.cosine_min, "cosine_mean": m.cosine_mean, "rel_l2": m.rel_l2}}
    per = {n: {k: round(float(o[k]), 6) for k in ("cosine_min", "cosine_mean", "rel_l2")} for n, o in per.items()}
    return EvalReport(Task.FEATURES.value, len(paths), "cosine", m.cosine_mean, m.cosine_mean, ref_name, None, per)


def _batched(runner, every_output: bool = False) -> Infer:
    """Feed a (1, ...) input to a bundle built for batch N (repeat it, keep the first output)."""
    batch = runner.manifest.batch

    def run(x: np.ndarray):
        if isinstance(batch, int) and batch > 1:
            x = np.repeat(x, batch, axis=0)
        if every_output:
            return [out[:1] for out in runner.outputs(x).values()]
        return runner.infer(x)[:1]

    return run


def _reference(manifest: Manifest, reference: str | Path | None, threads: int | None) -> tuple[Infer | None, str]:
    if reference is None:
        recorded = (manifest.quantization or {}).get("reference_bundle")
        if recorded and Path(recorded).is_dir():
            reference = recorded
    if reference is not None and (Path(reference) / "manifest.json").is_file():  # a bundle, not a model directory
        from edgekit import runtime

        ref = runtime.load(reference, threads=threads)
        return _batched(ref, every_output=ref.task is Task.FEATURES), f"bundle {reference} ({ref.manifest.precision})"
    source = str(reference) if reference is not None else manifest.model.source
    if not source:
        return None, ""
    ckpt = (manifest.model.checkpoint or {}).get("path") if reference is None else None
    try:
        from edgekit.config import SourceOptions
        from edgekit.stages.onnx_export import prepare_for_deploy
        from edgekit.stages.parity import torch_reference
        from edgekit.sources import load_source

        shape = tuple(manifest.inputs[0].shape)
        shape = (1, *shape[1:]) if isinstance(shape[0], int) else None
        # the bundle's own model is re-created with the options it was exported with (--num-classes, ...)
        options = SourceOptions.from_dict(manifest.model.source_options) if reference is None else None
        src = load_source(source, Path(ckpt) if ckpt else None, shape, options)
        return torch_reference(prepare_for_deploy(src.model)), f"PyTorch fp32 {source}"
    except UsageError:
        if reference is not None:
            raise
        return None, ""  # the recorded source cannot be loaded here: report accuracy without agreement
