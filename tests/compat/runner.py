"""One corpus pair through ``edgekit.export``, and what came of it: pass (with the worst cosine), or the
one-line reason it failed. Shared by the tests and ``scripts/compat_matrix.py``."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.compat.corpus import PRECISION, Model

CALIB_SIZE = 2  # two of the bundled photographs: enough to catch a broken export, cheap enough for CI


@dataclass(frozen=True)
class PairResult:
    model: str
    target: str
    precision: str
    passed: bool
    cosine: float | None  # worst image; None where parity is not measured (CoreML off macOS)
    measured_on: str  # "artifact", "stand-in" (TensorRT-flavoured ONNX in ONNX Runtime) or "not measured"
    reason: str  # the error's one line (or why parity was not measured)
    error_type: str  # the EdgekitError subclass, or the raw exception type when one escaped (a bug)
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def source_for(model: Model, workdir: Path) -> tuple[str, Path | None]:
    """(source, checkpoint) for ``edgekit.export``; what needs files (a checkpoint, a model directory) is written
    once under ``workdir``, with the corpus's random weights (:mod:`tests.compat.weights`)."""
    from edgekit.config import parse_shape

    shape = parse_shape(model.input_shape)
    kind, _, name = model.source.partition(":")
    if kind == "timm":  # a published timm architecture, with a checkpoint of random weights
        from tests.compat.weights import timm_checkpoint

        checkpoint = workdir / "checkpoints" / f"{name}.pth"
        if not checkpoint.is_file():
            timm_checkpoint(name, shape, checkpoint)
        return model.source, checkpoint
    if kind == "timm-dir":  # a slimmed timm model saved by save_for_hf
        from tests.compat.timm_tiny import save_timm_dir

        directory = workdir / "timm_dirs" / name
        if not (directory / "config.json").is_file():
            save_timm_dir(name, directory, shape)
        return str(directory), None
    if kind == "transformers":  # a tiny transformers model saved by save_pretrained
        from tests.compat import hf_models

        directory = workdir / "model_dirs" / name
        if not (directory / "config.json").is_file():
            hf_models.save_model_dir(getattr(hf_models, name), directory, shape)
        return str(directory), None
    return model.source, None  # package.module:factory, which builds its own weights


def target_options(target: str) -> dict | None:
    return {"onnx_only": True} if target == "trt" else None


def run_pair(model: Model, target: str, workdir: Path) -> PairResult:
    """Export ``model`` for ``target`` into ``workdir`` (the bundle is removed afterwards)."""
    import shutil

    import edgekit
    from edgekit.errors import EdgekitError

    out = workdir / f"{model.id.replace('/', '_')}-{target}"
    start = time.perf_counter()
    try:
        source, checkpoint = source_for(model, workdir)
        bundle = edgekit.export(source, target, out, precision=PRECISION, input_shape=model.input_shape,
                                checkpoint=checkpoint,
                                calib_size=CALIB_SIZE, target_options=target_options(target), force=True)
    except EdgekitError as e:
        return _failed(model, target, type(e).__name__, str(e), start)
    except Exception as e:  # noqa: BLE001 - an escaped exception is a bug in edgekit's error handling: recorded as one
        return _failed(model, target, f"uncaught {type(e).__name__}", str(e), start)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    parity = bundle.manifest["parity"]
    seconds = round(time.perf_counter() - start, 1)
    if not parity["measured"]:
        return PairResult(model.id, target, PRECISION, True, None, "not measured", parity["reason"], "", seconds)
    measured_on = "stand-in" if parity.get("measured_on") else "artifact"
    return PairResult(model.id, target, PRECISION, bool(parity["passed"]), parity["cosine_min"], measured_on, "", "",
                      seconds)


def _failed(model: Model, target: str, kind: str, message: str, start: float) -> PairResult:
    lines = message.strip().splitlines()
    return PairResult(model.id, target, PRECISION, False, None, "", lines[0] if lines else kind, kind,
                      round(time.perf_counter() - start, 1))


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # two exports side by side on two cores


def _run_model_pairs(model_id: str, targets: tuple[str, ...], workdir: Path) -> list[PairResult]:
    from tests.compat.corpus import by_id

    model = by_id(model_id)
    return [run_pair(model, target, workdir) for target in targets]


def run_pairs(selected: list[tuple[Model, str]], workdir: Path, workers: int) -> dict[tuple[str, str], PairResult]:
    """Every (model, target) of ``selected``, a model's pairs in one process (they share its checkpoint or
    directory), ``workers`` models at a time, each export on one thread.

    An export is mostly single-threaded Python (tracing, onnxslim's passes, the rewrite rules: measured 1.2 of
    2 cores busy on average over the suite), so two side by side finish the CI tier sooner than one after
    the other with two threads. A worker process that dies costs its model's pairs, reported as failures."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    by_model: dict[str, list[str]] = {}
    models: dict[str, Model] = {}
    for model, target in selected:
        by_model.setdefault(model.id, []).append(target)
        models[model.id] = model
    results: dict[tuple[str, str], PairResult] = {}
    context = multiprocessing.get_context("spawn")  # no fork of a process that already started torch's threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        futures = {pool.submit(_run_model_pairs, mid, tuple(targets), workdir): mid for mid, targets in by_model.items()}
        for future, mid in futures.items():
            try:
                done = future.result()
            except Exception as e:  # noqa: BLE001 - the worker died (a crash in a runtime): its pairs failed
                done = [PairResult(mid, t, PRECISION, False, None, "", f"the export process died: {e}", "crash", 0.0)
                        for t in by_model[mid]]
            results.update({(r.model, r.target): r for r in done})
    return results
