"""`edgekit profile`: measure bundles here or on a device over SSH, then map, aggregate and report.

For each bundle: check it (manifest, file hashes, runtime), pin inputs from the calibration images,
run the measurement loop (:func:`edgekit.engines.measure.sweep`, in this process or on the device), map each
runtime's per-layer records to ONNX nodes and PyTorch modules, add roofline figures, and compare
with a baseline when one is given. Several bundles profiled here are also timed head to head by the timing
harness (:mod:`edgekit.profiling.headtohead`): ratios to the first bundle with intervals and an A/A control.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.engines import measure
from edgekit.errors import UsageError
from edgekit.manifest import Manifest, as_manifest
from edgekit.profiling.config import ProfileConfig
from edgekit.profiling import headtohead
from edgekit.profiling.devices import get_device
from edgekit.profiling.layers import GraphIndex, summarize
from edgekit.profiling.report import build_report, load_report, run_key
from edgekit.profiling.roofline import bundle_cost, roofline
from edgekit.progress import Reporter


@dataclass
class ProfileReport:
    """The report (``data`` follows edgekit/profiling/profile.schema.json) and its regression verdict."""

    data: dict

    @property
    def regression(self) -> dict | None:
        return self.data.get("regression")

    @property
    def regressed(self) -> bool:
        return bool(self.regression and self.regression["failed"])


def pinned_inputs(manifest: Manifest, calib: Path | None, size: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, dict]:
    """The calibration images preprocessed as the bundle says (at ``size``, (H, W), inside its shape envelope,
    when given): float32 (N, 1, C, H, W), and where they came from. Real photographs, never zeros:
    data-dependent kernels (softmax, activations, int8 saturation) run their real paths."""
    manifest = as_manifest(manifest)
    from dataclasses import replace

    from edgekit.calib import load_calibration
    from edgekit.preprocess import Preprocess

    preprocess = Preprocess.from_dict(manifest.preprocess)
    calib_set = load_calibration(calib, replace(preprocess, size=tuple(size)) if size else preprocess)
    images = np.stack([x.astype(np.float32) for x in calib_set.inputs])
    want = manifest.inputs[0].shape[1:]
    got = list(images.shape[2:])
    if any(isinstance(w, int) and w > 0 and w != g for w, g in zip(want, got)):
        raise UsageError(f"pinned inputs have shape {got} but the bundle takes {want}; the manifest's preprocess "
                         f"does not match its input")
    return images, {"source": calib_set.source, "count": len(calib_set), "sha256": calib_set.sha256,
                    "names": calib_set.names}


def sizes_to_time(path: Path, manifest: Manifest, config: ProfileConfig) -> list[tuple[str, tuple[int, int] | None]]:
    """(label, (H, W)) of each size to time the bundle at: its export size (None), --input-shape's, or with
    --shapes-sweep its envelope's MIN, OPT and MAX; a size the bundle cannot take is refused in one line."""
    if config.input_shape is None and not config.shapes_sweep:
        return [("", None)]
    shapes = as_manifest(manifest).get("shapes")
    flag = "--shapes-sweep" if config.shapes_sweep else f"--input-shape {'x'.join(map(str, config.input_shape))}"
    if not shapes:
        size = "x".join(map(str, as_manifest(manifest).preprocess["size"]))
        raise UsageError(f"{flag}: bundle {path} takes one input size ({size}); export it with --shapes or "
                         f"--dynamic-hw to time other sizes")
    from edgekit.shapes import Envelope

    envelope = Envelope.from_dict(shapes)
    if config.shapes_sweep:
        picks = {}
        for label, shape in (("min", envelope.min), ("opt", envelope.opt), ("max", envelope.max)):
            picks.setdefault(tuple(shape[2:]), []).append(label)
        return [("/".join(labels), size) for size, labels in picks.items()]
    why = envelope.refusal((envelope.opt[0], envelope.opt[1], *config.input_shape))
    if why:
        raise UsageError(f"{flag}: {why}")
    return [("", tuple(config.input_shape))]


def _check_batches(path: Path, manifest: Manifest, batches: tuple[int, ...]) -> None:
    manifest = as_manifest(manifest)
    fixed = manifest.batch
    if isinstance(fixed, int) and fixed > 0 and any(b != fixed for b in batches):
        raise UsageError(f"bundle {path} has a fixed batch of {fixed}; re-export it with --dynamic-batch to sweep "
                         f"batch sizes {','.join(map(str, batches))}")


class _Progress:
    """Turns the runner's (stage, done, total) callbacks into advances of one Reporter bar."""

    def __init__(self, reporter: Reporter):
        self.reporter, self.seen = reporter, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        # stages are "b1 t2 warm-up" etc.; each counts up to its total once
        key = stage
        delta = done - self.seen.get(key, 0)
        if delta > 0:
            self.seen[key] = done
            self.reporter.advance(delta)


def _units(config: ProfileConfig) -> int:
    per_run = config.warmup + (100 if config.duration_s else config.iterations) + (1 if config.layer_iters else 0)
    return per_run * len(config.batches) * len(config.threads)


def _measure_here(path: Path, manifest: Manifest, images: np.ndarray, config: ProfileConfig, progress) -> dict:
    import edgekit.runtime
    from edgekit.config import Target
    from edgekit.targets import get_backend

    problems = get_backend(Target.parse(manifest.target)).preflight(manifest)  # as runtime.load checks
    if problems:
        raise UsageError(f"bundle {path} cannot run here: {'; '.join(problems)}")
    spec = manifest.inputs[0]
    runs = measure.sweep(lambda t: edgekit.runtime.load(path, t, check_files=False).runner, images, spec.name,
                         spec.dtype, config.settings(), progress)
    name = manifest.runtime.name
    return {"environment": measure.environment(),
            "runtime": {"name": name, "version": measure.runtime_version(name)}, "runs": runs}


def profile_bundles(config: ProfileConfig, reporter: Reporter | None = None) -> ProfileReport:
    from edgekit.manifest import read_manifest, verify_files

    rep = reporter or Reporter()
    baseline = load_report(config.baseline) if config.baseline else None  # a bad baseline fails before any run
    bundles = []
    for path in config.bundles:
        path = Path(path)
        manifest = read_manifest(path)
        problems = verify_files(path, manifest)
        if problems:
            raise UsageError(f"bundle {path} does not match its manifest: {'; '.join(problems)}; re-export it")
        _check_batches(path, manifest, config.batches)
        bundles.append((path, manifest, sizes_to_time(path, manifest, config)))
    results, environment, pinned = [], None, []
    runs = [(path, manifest, label, size) for path, manifest, sizes in bundles for label, size in sizes]
    for path, manifest, label, size in runs:
        images, inputs = pinned_inputs(manifest, config.calib, size)
        pinned.append(images)
        where = f" on {config.remote}" if config.remote else ""
        at = f" at {size[0]}x{size[1]}" + (f" ({label})" if label else "") if size else ""
        with rep.step(f"profile {headtohead.label(path, manifest)}{at}{where}", total=_units(config)):
            if config.remote:
                from edgekit.profiling.remote import profile_remote

                measured = profile_remote(config.remote, path, manifest, images, config.settings(), _Progress(rep))
            else:
                measured = _measure_here(path, manifest, images, config, _Progress(rep))
        environment = measured["environment"]
        device = get_device(config.device, environment["cpu"])
        results.append(_bundle_result(path, manifest, inputs, measured, device, config, size, label))
    device = get_device(config.device, environment["cpu"] if environment else None)
    data = build_report(config, environment, device, results)
    if len(bundles) > 1 and len(runs) == len(bundles) and not config.remote:
        # one process, runs interleaved: ratios that mean something (between bundles, not between sizes)
        bundles = [(path, manifest) for path, manifest, _ in bundles]
        with rep.step(f"time the {len(bundles)} bundles head to head (interleaved, A/A control)",
                      total=headtohead.rounds(config) * len(config.threads)):
            data["head_to_head"] = headtohead.head_to_head(bundles, pinned, config, rep.advance)
    if baseline is not None:
        from edgekit.profiling.regression import compare

        data["regression"] = compare(data, baseline, config.fail_over_pct, str(config.baseline))
    return ProfileReport(data)


def _bundle_result(path: Path, manifest: Manifest, inputs: dict, measured: dict, device, config: ProfileConfig,
                   size: tuple[int, int] | None = None, label: str = "") -> dict:
    cost = bundle_cost(path, manifest, size)
    first = path / manifest.files[0].path
    graph = GraphIndex.from_onnx(first) if first.suffix == ".onnx" else None
    model = manifest.model
    name = (model.name or path.name) + (f"@{size[0]}x{size[1]}" if size else "")
    shape = list(manifest.inputs[0].shape)
    if size:
        shape[2:] = list(size)
    runs = []
    for run in measured["runs"]:
        median = run["latency_ms"]["median"]
        if run.get("layers"):
            run["layers"] = summarize(run["layers"], graph, config.block_depth, config.top, median)
        run["roofline"] = roofline(cost, run["batch"], median, device, manifest.precision, run["threads"])
        run["key"] = run_key(name, manifest.target, manifest.precision, run["batch"], run["threads"])
        runs.append(run)
    return {"bundle": {"path": str(path), "model": name, "task": model.task,
                       "target": manifest.target, "precision": manifest.precision,
                       "runtime_built": manifest.runtime.to_dict(), "runtime": measured["runtime"],
                       "input_shape": shape, **({"envelope_corner": label} if label else {})},
            "inputs": inputs, "cost": cost, "runs": runs}
