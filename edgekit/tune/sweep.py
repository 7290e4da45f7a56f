"""`edgekit sweep SPEC.yaml --out DIR`: models x targets x precisions x devices, one table.

A *cell* is one (model, target, precision, device). The sweep runs in two phases:

1. every distinct export (model, target, precision) is built and judged once, whatever the devices, in
   parallel: a local process pool sized to the cores, or Ray tasks anywhere in the cluster
   (:class:`RayExecutor`); the exports are cached by content hash in ``DIR/cache``;
2. every cell inside the budget is timed on its device, one cell at a time per device (two benchmarks never
   share a device), the devices in parallel. On Ray a timing task asks for the custom resource
   ``device:<name>`` (one unit), so it runs on the node that holds the device and never beside another.

A finished cell (timed, over budget, skipped or failed) is written to ``DIR/cells/<key>.json`` at once and
never redone: an interrupted sweep resumes where it stopped. A failing cell is recorded with a one-line reason
and the sweep goes on. ``DIR/results.json`` (the rows), ``results.csv``, ``best.md`` (per model and device, the
fastest cell in budget) and ``pareto-<device>.png`` are written at the end.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.errors import EdgekitFailure, UsageError
from edgekit.progress import Reporter
from edgekit.tune import report as tables
from edgekit.tune.cells import Job, _one_line, _write_json, accuracy, available, build, time_bundles

SPEC_KEYS = {"models": "list of model sources (a string, or a mapping with `source` and export options)",
             "targets": "list of targets (onnx, openvino, trt, coreml)",
             "precisions": "list of precisions (fp32, fp16, bf16, int8)",
             "devices": "list of devices: `local` or user@host[:port] (default: [local])",
             "data": "labeled folder for top-1 / mIoU (default: the parity gate's agreement)",
             "calib": "images for the parity gate and int8 calibration (as export --calib)",
             "max_drop": "accuracy budget in points (default 1.0)",
             "iterations": "timed runs per cell (default 30)", "warmup": "untimed runs first (default 5)",
             "ssh_config": "ssh config file for the devices", "remote_python": "the devices' python (default python3)"}
MODEL_OPTIONS = ("input_shape", "checkpoint", "mean", "std", "resize", "labels", "num_classes", "features")
LOCAL = "local"


@dataclass(frozen=True)
class Spec:
    models: tuple[dict, ...]  # {"source": ..., and export options}
    targets: tuple[str, ...]
    precisions: tuple[str, ...]
    devices: tuple[str, ...] = (LOCAL,)
    data: str | None = None
    calib: str | None = None
    max_drop: float = 1.0
    iterations: int = 30
    warmup: int = 5
    ssh_config: str | None = None
    remote_python: str = "python3"


@dataclass(frozen=True)
class Cell:
    model: dict
    target: str
    precision: str
    device: str

    @property
    def job(self) -> Job:
        options = {k: v for k, v in self.model.items() if k != "source"}
        return Job(self.model["source"], self.target, self.precision, options)

    def key(self) -> str:
        text = json.dumps([self.model, self.target, self.precision, self.device], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def row(self) -> dict:
        return {"model": self.model["source"], "device": self.device, "target": self.target,
                "precision": self.precision}


def load_spec(path: str | Path) -> Spec:
    """Read and check the YAML spec; any problem is one UsageError line."""
    import yaml

    from edgekit.config import Precision, Target
    from edgekit.profiling.config import Remote

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"sweep spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path} must be a mapping with the keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; a spec has {', '.join(SPEC_KEYS)}")
    for key in ("models", "targets", "precisions"):
        if not raw.get(key) or not isinstance(raw[key], list):
            raise UsageError(f"{path}: `{key}` is missing or not a list ({SPEC_KEYS[key]})")
    models = []
    for m in raw["models"]:
        m = {"source": m} if isinstance(m, str) else m
        if not isinstance(m, dict) or not isinstance(m.get("source"), str):
            raise UsageError(f"{path}: each model is a source string or a mapping with `source`, got {m!r}")
        bad = sorted(set(m) - {"source", *MODEL_OPTIONS})
        if bad:
            raise UsageError(f"{path}: model option {bad[0]!r} is not one of {', '.join(MODEL_OPTIONS)}")
        models.append(m)
    targets = tuple(Target.parse(str(t)).value for t in raw["targets"])
    precisions = tuple(Precision.parse(str(p)).value for p in raw["precisions"])
    devices = tuple(str(d) for d in (raw.get("devices") or [LOCAL]))
    for d in devices:
        if d != LOCAL:
            Remote.parse(d)
    base = path.parent

    def relative(value):
        return str(base / value) if value and not Path(value).is_absolute() else value

    try:
        max_drop = float(raw.get("max_drop", 1.0))
        iterations, warmup = int(raw.get("iterations", 30)), int(raw.get("warmup", 5))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{path}: max_drop, iterations and warmup are numbers ({e})") from None
    if max_drop < 0 or iterations < 2 or warmup < 0:
        raise UsageError(f"{path}: max_drop >= 0, iterations >= 2 and warmup >= 0, got {max_drop}, {iterations}, "
                         f"{warmup}")
    data, calib = relative(raw.get("data")), relative(raw.get("calib"))
    for name, value in (("data", data), ("calib", calib)):
        if value and not Path(value).exists():
            raise UsageError(f"{path}: {name} {value} does not exist")
    if calib:
        for m in models:
            m.setdefault("calib", calib)
    return Spec(tuple(models), targets, precisions, devices, data, calib, max_drop, iterations, warmup,
                relative(raw.get("ssh_config")), str(raw.get("remote_python", "python3")))


def cells_of(spec: Spec) -> list[Cell]:
    return [Cell(m, t, p, d) for m in spec.models for d in spec.devices for t in spec.targets for p in spec.precisions]


def run_sweep(spec: Spec, out: str | Path, executor: str = "local", ray_address: str | None = None,
              workers: int | None = None, reporter: Reporter | None = None) -> dict:
    """Run (or resume) the sweep into ``out``; returns {"rows", "failed", "done_before"}."""
    rep = reporter or Reporter()
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    cells = cells_of(spec)
    done = {c.key() for c in cells if (out / "cells" / f"{c.key()}.json").is_file()}
    todo = [c for c in cells if c.key() not in done]
    remotes = {d: _remote(spec, d) for d in spec.devices}
    for device in sorted({c.device for c in todo} - {LOCAL}):
        _check_answers(remotes[device])
    pool = _executor(executor, ray_address, workers)
    try:
        # 1. exports and accuracy: one per distinct job, whatever the devices
        jobs: dict[str, Job] = {}
        for c in todo:
            why = available(c.target, c.precision, c.device != LOCAL)
            if why:
                _finish(out, c, {"status": "skipped", "reason": why})
            else:
                jobs.setdefault(c.job.key(), c.job)
        if spec.data:  # the drop is measured from each model's fp32 export
            for c in todo:
                ref = Job(c.job.source, "onnx", "fp32", c.job.options)
                jobs.setdefault(ref.key(), ref)
        records: dict[str, dict] = {}
        with rep.step(f"export and judge {len(jobs)} models x targets x precisions ({pool.name})", total=len(jobs)):
            for key, record in pool.export_all(jobs, out / "cache", spec.data):
                records[key] = record
                rep.advance()
        # 2. the budget, then timing per device
        timing: dict[str, list[tuple[Cell, dict]]] = {}
        for c in todo:
            if (out / "cells" / f"{c.key()}.json").is_file():
                continue
            record = dict(records[c.job.key()])
            if record["status"] != "ok":
                _finish(out, c, record)
                continue
            record["drop"] = _drop(record, spec, records, c)
            record["in_budget"] = record["drop"] <= spec.max_drop + 1e-9
            if not record["in_budget"]:
                _finish(out, c, {**record, "status": "over budget",
                                 "reason": f"drops {record['drop']:.2f} points > {spec.max_drop:g}: not timed"})
                continue
            timing.setdefault(c.device, []).append((c, record))
        total = sum(len(v) for v in timing.values())
        with rep.step(f"time {total} cells on {len(timing)} devices (one at a time per device)", total=total):
            for c, record in pool.time_all(timing, remotes, spec):
                _finish(out, c, record)
                rep.advance()
    finally:
        pool.close()
    rows = [json.loads((out / "cells" / f"{c.key()}.json").read_text()) for c in cells
            if (out / "cells" / f"{c.key()}.json").is_file()]
    _write_outputs(out, rows)
    return {"rows": rows, "failed": sum(r["status"] == "failed" for r in rows), "done_before": len(done)}


def _drop(record: dict, spec: Spec, records: dict[str, dict], cell: Cell) -> float:
    if spec.data is None:
        return round((1.0 - record["value"]) * 100, 4)
    ref = records.get(Job(cell.job.source, "onnx", "fp32", cell.job.options).key(), {})
    fp32 = [r["value"] for r in records.values()
            if r.get("value") is not None and r["job"]["source"] == cell.job.source and r["job"]["precision"] == "fp32"]
    reference = ref.get("value") if ref.get("value") is not None else max(fp32, default=record["value"])
    return round((reference - record["value"]) * 100, 4)


def _remote(spec: Spec, device: str):
    if device == LOCAL:
        return None
    from edgekit.profiling.config import Remote

    return Remote.parse(device, spec.ssh_config, spec.remote_python)


def _check_answers(remote) -> None:
    """A device that does not answer is a usage error before anything runs."""
    from edgekit.profiling.remote import ssh_command

    try:
        done = subprocess.run(ssh_command(remote, "true"), capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise UsageError(f"device {remote} does not answer over SSH (no reply in 30 s)") from None
    except FileNotFoundError:
        raise UsageError(f"device {remote} is reached over SSH, and ssh is not installed here") from None
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        raise UsageError(f"device {remote} does not answer over SSH: {lines[-1] if lines else 'ssh failed'}")


def _finish(out: Path, cell: Cell, record: dict) -> None:
    row = {**cell.row(), **{k: v for k, v in record.items() if k not in ("job", "cache")}}
    row.setdefault("reason", "")
    _write_json(out / "cells" / f"{cell.key()}.json", row)


def _write_outputs(out: Path, rows: list[dict]) -> None:
    for device in sorted({r["device"] for r in rows}):
        mine = [r for r in rows if r["device"] == device]
        for model in {r["model"] for r in mine}:  # a model's front: its own cells only
            front = tables.pareto([r for r in mine if r["model"] == model])
            for r in mine:
                if r["model"] == model:
                    r["pareto"] = any(r is f for f in front)
        png = tables.plot_png(mine, f"edgekit sweep: accuracy against latency on {device}")
        if png:
            (out / f"pareto-{_safe(device)}.png").write_bytes(png)
    _write_json(out / "results.json", rows)
    tables.write_csv(out / "results.csv", rows)
    best = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for device in dict.fromkeys(r["device"] for r in rows):
            timed = [r for r in rows if r["model"] == model and r["device"] == device and r.get("latency_ms")]
            if timed:
                win = min(timed, key=lambda r: r["latency_ms"])
                fp32 = [r for r in timed if r["precision"] == "fp32"]
                base = min(fp32, key=lambda r: r["latency_ms"]) if fp32 else None
                best.append({"model": model, "device": device, "target": win["target"], "precision": win["precision"],
                             "latency_ms": win["latency_ms"], "value": win.get("value"), "drop": win.get("drop"),
                             "vs_fp32": round(base["latency_ms"] / win["latency_ms"], 3) if base else None})
    (out / "best.md").write_text("# Best deployment per model and device (fastest within the budget)\n\n"
                                 + tables.markdown(best, ("model", "device", "target", "precision", "latency_ms",
                                                          "value", "drop", "vs_fp32")))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --- executors ---------------------------------------------------------------------------------------------

def export_and_judge(job: dict, cache: str, data: str | None, threads: int | None = None) -> dict:
    """One export and its accuracy, in a worker (a pool process or a Ray task): plain data in, plain data out;
    every failure is a record, never an exception."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    job = Job(**job)
    try:
        record = build(job, Path(cache))
        if record["status"] == "ok":
            record.update(accuracy(record["bundle"], data))
    except (UsageError, EdgekitFailure) as e:
        record = {"job": asdict(job), "status": "failed", "reason": _one_line(e)}
    except Exception as e:  # noqa: BLE001 - a library failure in one cell must not stop the sweep
        record = {"job": asdict(job), "status": "failed", "reason": f"{type(e).__name__}: {_one_line(e)}"}
    return record


def time_cell(bundle: str, remote, iterations: int, warmup: int) -> dict:
    """One cell's latency on its device; a failure is a record."""
    try:
        (timing,) = time_bundles([Path(bundle)], remote, iterations, warmup)
        return {"status": "timed", "latency_ms": timing["latency_ms"], "p90_ms": timing.get("p90_ms")}
    except (UsageError, EdgekitFailure) as e:
        return {"status": "failed", "reason": f"timing: {_one_line(e)}"}
    except Exception as e:  # noqa: BLE001 - as above
        return {"status": "failed", "reason": f"timing: {type(e).__name__}: {_one_line(e)}"}


class LocalExecutor:
    """Exports in a process pool sized to the cores; each device's cells timed one after another, the devices
    side by side in threads (the local CPU is timed only after every export has finished)."""

    name = "local process pool"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)

    def export_all(self, jobs: dict[str, Job], cache: Path, data):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not jobs:
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_platform_start_method) as pool:
            futures = {pool.submit(export_and_judge, asdict(job), str(cache), data, threads): key
                       for key, job in jobs.items()}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def time_all(self, timing: dict, remotes: dict, spec: Spec):
        """Each device's cells in its own thread, one after another; each result is yielded (and so recorded)
        as soon as it is measured."""
        import queue
        import threading

        results: queue.Queue = queue.Queue()

        def device_queue(cells):
            try:
                for c, record in cells:
                    timed = time_cell(record["bundle"], remotes[c.device], spec.iterations, spec.warmup)
                    results.put((c, {**record, **timed}))
            except BaseException as e:  # noqa: BLE001 - an interrupt, handed to the main thread
                results.put(e)
            finally:
                results.put(None)

        threads = [threading.Thread(target=device_queue, args=(cells,), daemon=True) for cells in timing.values()]
        for t in threads:
            t.start()
        finished = 0
        while finished < len(threads):
            item = results.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def close(self) -> None:
        return None


def _platform_start_method() -> None:
    """In a pool worker: the platform's own start method for any process a library starts (the workers are
    spawned, which would make each of those a new interpreter: OpenVINO's and NNCF's telemetry start one per
    event, and as fresh interpreters they tripled a sweep's export time here)."""
    import multiprocessing

    multiprocessing.set_start_method(None, force=True)


class RayExecutor:
    """Exports as Ray tasks anywhere in the cluster (one CPU each); each timing as a task that asks for one
    unit of the custom resource ``device:<name>`` (``device:local`` for the node whose CPU is "local"), so it
    runs on the node that holds the device and two never run on one device together. Bundles and the cache
    live under the sweep's output directory, which every node must see (shared storage)."""

    name = "Ray"

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'edgekit[ray]'") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            try:
                # a new local instance holds this machine's CPU as the device "local"
                local = {} if address else {"resources": {device_resource(LOCAL): 1}, "include_dashboard": False}
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                             filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}}, **local)
            except Exception as e:  # noqa: BLE001 - ConnectionError and friends: one line
                raise UsageError(f"cannot reach the Ray cluster at {address or 'a new local one'}: "
                                 f"{_one_line(e)}") from None
            self.started = True

    def export_all(self, jobs: dict[str, Job], cache: Path, data):
        task = self.ray.remote(num_cpus=1)(export_and_judge)
        pending = {task.remote(asdict(job), str(cache.resolve()), data, 1): key for key, job in jobs.items()}
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in ready:
                yield pending.pop(ref), self.ray.get(ref)

    def time_all(self, timing: dict, remotes: dict, spec: Spec):
        resources = self.ray.cluster_resources()
        pending = {}
        for device, cells in timing.items():
            resource = device_resource(device)
            if resources.get(resource, 0) < 1:
                for c, record in cells:
                    yield c, {**record, "status": "failed",
                              "reason": f"no Ray node holds the resource {resource!r}: start the node that reaches "
                                        f"{device} with ray start --resources='{{\"{resource}\": 1}}'"}
                continue
            task = self.ray.remote(num_cpus=0, resources={resource: 1})(time_cell)
            for c, record in cells:
                pending[task.remote(str(Path(record["bundle"]).resolve()), remotes[device], spec.iterations,
                                    spec.warmup)] = (c, record)
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in ready:
                c, record = pending.pop(ref)
                yield c, {**record, **self.ray.get(ref)}

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def device_resource(device: str) -> str:
    """The Ray custom resource a node declares to hold ``device``."""
    return f"device:{device}"


def _executor(kind: str, address: str | None, workers: int | None):
    if kind == "local":
        if address:
            raise UsageError("--ray-address goes with --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address)
    raise UsageError(f"--executor {kind!r} is not one of local, ray")
