"""One candidate deployment: export it once (cached by content hash), measure its accuracy, time it.

A :class:`Job` is what an export needs (source, target, precision and the export options); its
:meth:`Job.key` hashes them with a fingerprint of the files the source reads (a checkpoint, a model
directory, the module of a ``package.module:factory``) and edgekit's version, so a second run finds the
bundle (and a failure, which is as deterministic) in the cache instead of exporting again. Every function
here takes and returns plain data, so a process pool or a Ray task can run it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitFailure, ParityError, UsageError

AVAILABLE_TARGETS = ("onnx", "openvino", "trt", "coreml")


@dataclass(frozen=True)
class Job:
    """``options``: keyword arguments of :func:`edgekit.export` besides source, target, out and precision (JSON
    values only: they are hashed)."""

    source: str
    target: str
    precision: str
    options: dict = field(default_factory=dict)

    def key(self) -> str:
        from edgekit.version import __version__

        text = json.dumps({"source": self.source, "target": self.target, "precision": self.precision,
                           "options": self.options, "files": _fingerprint(self.source, self.options),
                           "edgekit": __version__}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def label(self) -> str:
        return f"{self.target} {self.precision}"

    def slug(self) -> str:
        """A folder name for the bundle: distinct labels when several are profiled together."""
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.source.rsplit("/", 1)[-1])[-60:]
        return f"{name}-{self.target}-{self.precision}"


def build(job: Job, cache: Path) -> dict:
    """Export ``job`` into ``cache/exports/<key>/bundle`` unless the cache has it; returns its record:
    ``status`` ok or failed, ``reason`` (one line) when failed, ``bundle``, ``export_s``, ``cache`` hit/miss.
    A UsageError (the job itself is wrong) propagates."""
    import edgekit

    folder = Path(cache) / "exports" / job.key()
    record_file = folder / "record.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record["status"] != "ok" or (Path(record["bundle"]) / "manifest.json").is_file():
            return {**record, "cache": "hit"}
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = {"job": asdict(job), "status": "ok", "reason": "", "bundle": str(folder / job.slug())}
    try:
        edgekit.export(job.source, job.target, folder / job.slug(), precision=job.precision, force=True,
                       **job.options)
    except ParityError as e:
        record.update(status="failed", reason=f"parity gate: {_one_line(e)}")
    except UsageError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except EdgekitFailure as e:
        record.update(status="failed", reason=_one_line(e))
    record["export_s"] = round(time.perf_counter() - start, 2)
    _write_json(record_file, record)
    return {**record, "cache": "miss"}


def accuracy(bundle: str | Path, data: str | Path | None) -> dict:
    """The bundle's accuracy: on the labeled folder ``data`` (top-1 or mIoU, as `edgekit evaluate`), else its
    parity gate's agreement with PyTorch (top-1, pixel or cosine agreement on the gate's images)."""
    from edgekit.manifest import read_manifest

    if data is not None:
        from edgekit.accuracy import evaluate_bundle

        report = evaluate_bundle(bundle, data)
        return {"metric": report.metric, "value": report.value, "images": report.images, "on": str(data)}
    parity = read_manifest(Path(bundle)).get("parity") or {}
    if not parity.get("measured"):
        raise EdgekitFailure(f"{bundle} has no parity figures to judge it by ({parity.get('reason', 'not measured')}); "
                             f"pass --data with labeled images")
    kind = parity.get("agreement_kind", "top-1")
    return {"metric": f"agreement ({kind})", "value": float(parity["agreement"]), "images": parity.get("images"),
            "on": (parity.get("set") or {}).get("source", "")}


def time_bundles(paths: list[Path], remote=None, iterations: int = 50, warmup: int = 10,
                 threads: int | None = None) -> list[dict]:
    """Latency of each bundle as `edgekit profile` measures it (``remote``: a
    :class:`~edgekit.profiling.config.Remote`): per bundle ``latency_ms`` (median), ``p90_ms``, and where several
    run here, ``head_to_head_ms`` from one interleaved run (the figure ratios are taken from)."""
    from edgekit.profiling.config import ProfileConfig
    from edgekit.profiling.headtohead import labels
    from edgekit.profiling.profiler import profile_bundles

    config = ProfileConfig(bundles=tuple(Path(p) for p in paths), warmup=warmup, iterations=iterations,
                           layer_iters=0, threads=(threads,), remote=remote)
    data = profile_bundles(config).data
    out = []
    for result in data["results"]:
        run = result["runs"][0]["latency_ms"]
        out.append({"latency_ms": run["median"], "p90_ms": run.get("p90")})
    head = (data.get("head_to_head") or [None])[0]
    if head:
        from edgekit.manifest import read_manifest

        names = labels([(Path(p), read_manifest(Path(p))) for p in paths])
        by_name = {row["bundle"]: row for row in head["rows"]}
        for timing, name in zip(out, names):
            timing["head_to_head_ms"] = by_name[name]["median_ms"]
    return out


def available(target: str, precision: str, remote: bool = False) -> str:
    """Why ``target`` at ``precision`` cannot be tried ("" when it can): on this machine, or with ``remote`` on
    a device over SSH, where only what cannot be built here counts (the device says the rest when timed)."""
    from edgekit.config import Precision, Target
    from edgekit.targets import get_backend

    backend = get_backend(Target.parse(target))
    if Precision.parse(precision) not in backend.precisions:
        return f"{target} has no {precision}"
    if remote and target in ("trt", "coreml"):
        return f"{target} is not timed over SSH (edgekit profile --remote runs ONNX Runtime and OpenVINO bundles)"
    missing = backend.missing()
    if missing or remote:
        return short_reason(missing or "")
    if target == "trt":
        try:
            import tensorrt  # noqa: F401
            import torch

            if not torch.cuda.is_available():
                return "TensorRT engines need an NVIDIA GPU; none here"
        except ImportError:
            return "TensorRT is not installed here"
    if target == "coreml" and sys.platform != "darwin":
        return "CoreML models run on macOS only"
    if target == "openvino" and precision in ("fp16", "bf16"):
        from edgekit.engines.openvino import device_supports

        hint = {"fp16": "f16", "bf16": "bf16"}[precision]
        if not device_supports("CPU", hint):
            return f"this CPU has no {precision} compute (OpenVINO would run it in f32)"
    return ""


def short_reason(text: str) -> str:
    """A target's "cannot run here" message as a table cell: its first clause (`edgekit export` gives the rest)."""
    return text.split(" (")[0].split(": ")[0]


def _fingerprint(source: str, options: dict) -> list:
    """(path, size, mtime) of the files the source and its checkpoint read, so an edited file misses the cache."""
    paths = [options.get("checkpoint")]
    if ":" in source and not Path(source).exists() and not source.startswith(("timm:", "hf:")):
        import importlib.util

        try:
            spec = importlib.util.find_spec(source.split(":", 1)[0])
            paths.append(spec.origin if spec else None)
        except (ImportError, ValueError):
            pass
    elif Path(source).exists():
        paths.append(source)
    found = []
    for p in filter(None, paths):
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
        found += [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return found


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:400]


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
