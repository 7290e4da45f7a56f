"""Run a bundle from Python: ``edgekit.runtime.load(BUNDLE)`` checks it, then runs images.

Before anything runs, the manifest's schema version, every file's sha256 and the installed
runtime are checked against the bundle, and each mismatch is said plainly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgekit.config import Target, Task
from edgekit.engines import Engine
from edgekit.errors import UsageError
from edgekit.manifest import Manifest, read_manifest, verify_files
from edgekit.preprocess import Preprocess
from edgekit.targets import get_backend


@dataclass(frozen=True)
class KeepSize:
    """The preprocessing of ``load(..., keep_size=True)``: an image keeps its own size (no resize) when the bundle's
    shape envelope takes it, and is refused in one line otherwise."""

    base: Preprocess
    envelope: object  # edgekit.shapes.Envelope

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = int(image.shape[0]), int(image.shape[1])
        why = self.envelope.refusal((self.envelope.opt[0], self.envelope.opt[1], h, w))
        if why:
            raise UsageError(f"keep_size: the {h}x{w} image cannot run at its own size: {why}")
        return replace(self.base, size=(h, w))(image)

    def __getattr__(self, name: str):  # mean, std, resize, size (the OPT size) as the base preprocessing
        return getattr(self.base, name)


@dataclass
class BundleRunner:
    path: Path
    manifest: Manifest
    preprocess: Preprocess | KeepSize
    runner: Engine
    envelope: object | None = None  # edgekit.shapes.Envelope of a bundle exported for a range of input sizes

    @property
    def task(self) -> Task:
        return Task.parse(self.manifest.model.task)

    @property
    def labels(self) -> list[str] | None:
        """One label per class, in class order, when the bundle lists them (``--labels``, a model directory's
        ``id2label`` / ``label_names``); None otherwise."""
        labels = self.manifest.model.labels
        return list(labels) if isinstance(labels, list) else None

    def label(self, index: int) -> str:
        """The label of class ``index``, or the index as text when the bundle lists none."""
        labels = self.labels
        return labels[index] if labels is not None and 0 <= index < len(labels) else str(index)

    @property
    def output_names(self) -> list[str]:
        """The bundle's outputs, in order (``output`` for a classifier or segmenter; ``stage1``... for maps)."""
        return [o["name"] for o in self.manifest["outputs"]]

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run an already-preprocessed float32 tensor; returns the first output."""
        return self.outputs(x)[self.output_names[0]]

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run an already-preprocessed float32 tensor; returns every output by name, in the manifest's order."""
        if self.envelope is not None:
            why = self.envelope.refusal(x.shape)
            if why:
                raise UsageError(f"bundle {self.path}: {why}")
        names = self.output_names
        outs = self.runner.infer_named({self.runner.input_names[0]: x.astype(np.float32, copy=False)}, names)
        return dict(zip(names, outs))

    def __call__(self, image: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """Run one 8-bit RGB image (H, W, 3) with the bundle's preprocessing; returns the raw output of batch
        element 0: logits (1, classes) or (1, classes, h, w), or for a features bundle every output by name
        (``{"stage1": (1, C, H/s, W/s), ...}``, ``{"embedding": (1, D)}``)."""
        x = self.preprocess(image)
        batch = self.manifest.batch
        if isinstance(batch, int) and batch > 1:
            x = np.repeat(x, batch, axis=0)
        if self.task is Task.FEATURES:
            return {name: out[:1] for name, out in self.outputs(x).items()}
        return self.infer(x)[:1]

    def features(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of a features bundle for one 8-bit RGB image, by name (batch element 0)."""
        if self.task is not Task.FEATURES:
            raise UsageError(f"bundle {self.path} is a {self.task.value} model; features() is for features bundles "
                             f"(exported with --features, or a model without a classifier)")
        return self(image)

    def classify(self, image: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
        """Top-k (class index, probability) of a classification bundle."""
        self._needs(Task.CLASSIFICATION, "classify")
        logits = self(image)[0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p)[:k]
        return [(int(i), float(p[i])) for i in top]

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Label map (h, w) uint8/uint16 at the model's output resolution."""
        self._needs(Task.SEGMENTATION, "segment")
        labels = self(image)[0].argmax(0)
        return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)

    def _needs(self, task: Task, method: str) -> None:
        if self.task is Task.FEATURES:
            raise UsageError(f"bundle {self.path} outputs features ({', '.join(self.output_names)}), not class "
                             f"scores: {method}() needs a {task.value} bundle; use bundle(image) or features(image)")

    def close(self) -> None:
        self.runner.close()


def load(bundle: str | Path, threads: int | None = None, check_files: bool = True,
         keep_size: bool = False) -> BundleRunner:
    """Check and open a bundle. ``keep_size``: a bundle with a shape envelope runs each image at its own size
    when the envelope takes it (a camera's resolution, uncropped) instead of resizing it to the export size."""
    path = Path(bundle)
    manifest = read_manifest(path)
    if check_files:
        problems = verify_files(path, manifest)
        if problems:
            raise UsageError(f"bundle {path} does not match its manifest: {'; '.join(problems)}; re-export it")
    backend = get_backend(Target.parse(manifest.target))
    problems = backend.preflight(manifest)
    if problems:
        raise UsageError(f"bundle {path} cannot run here: {'; '.join(problems)}")
    envelope = None
    if manifest.get("shapes"):
        from edgekit.shapes import Envelope

        envelope = Envelope.from_dict(manifest["shapes"])
    elif keep_size:
        raise UsageError(f"keep_size: bundle {path} takes one input size ({'x'.join(map(str, manifest.preprocess['size']))}"
                         f"); export it with --shapes or --dynamic-hw for a range of sizes")
    runner = backend.open(path, manifest.file_paths, manifest.runtime_options, threads)
    preprocess = Preprocess.from_dict(manifest.preprocess)
    return BundleRunner(path, manifest, KeepSize(preprocess, envelope) if keep_size else preprocess, runner, envelope)
