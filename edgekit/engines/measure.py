"""Measure one bundle on the machine this runs on: the profiler's core.

The engines folder is copied next to a bundle onto a device (`edgekit profile --remote`) and run there with
``python3 -m engines BUNDLE --inputs inputs.npy --settings '{...}'``; it prints one JSON object on stdout
and progress as JSON lines on stderr. It imports only the standard library, numpy and the bundle's runtime
(onnxruntime, openvino or tensorrt), never edgekit, so it runs on a Jetson or a board that has nothing
else. edgekit imports the same functions for local profiling, so local and remote figures come from the
same loop and the same engines.

Shapes: ``inputs.npy`` is float32 (N, 1, C, H, W): N preprocessed calibration images at batch 1;
a run at batch B feeds images i..i+B-1 (cyclically), rotating through the N pinned batches.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import engine_class
from .base import Engine, EngineError

PROTOCOL = 1  # bumped when the JSON this file prints changes incompatibly


# ---------------------------------------------------------------- statistics and memory

def latency_stats(samples_ms: list[float]) -> dict:
    """Summary of latencies in ms: median, p90, p99 (linear interpolation), min, max, mean, std (ddof=1)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"count": int(a.size), "median": float(p50), "p90": float(p90), "p99": float(p99), "min": float(a.min()),
            "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux >= 4.0), so the next peak is
    this run's, not the whole process's history. False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else None


def peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------- pinned inputs

def make_feeds(images: np.ndarray, batch: int, input_name: str, dtype: str = "float32") -> list[dict]:
    """Pinned feeds from N images (N, 1, C, H, W): N batches of B images taken cyclically."""
    n = images.shape[0]
    feeds = []
    for i in range(n):
        idx = [(i + j) % n for j in range(batch)]
        feeds.append({input_name: np.ascontiguousarray(np.concatenate([images[k] for k in idx]).astype(dtype))})
    return feeds


def open_bundle(bundle: Path, manifest: dict, threads: int | None) -> Engine:
    """The engine for a bundle's file, opened as its manifest says."""
    runtime = manifest.get("runtime", {})
    name = runtime.get("name", "")
    if name == "tensorrt" and runtime.get("artifact") == "onnx":
        raise EngineError("this TensorRT bundle holds ONNX only (--onnx-only): build its engine on the device first")
    return engine_class(name).open(bundle / manifest["files"][0]["path"], manifest.get("runtime_options", {}), threads)


# ---------------------------------------------------------------- the measurement loop

def measure(open_fn, feeds: list[dict], settings: dict, progress=None) -> dict:
    """Cold start (open + first inference), warm-up, timed runs (a fixed count or a duration),
    peak memory, then per-layer records from the runtime's profiler in a separate pass (profiling
    perturbs latency, so it never overlaps the timed runs).

    open_fn() -> an object with infer(feeds) and profile(feeds, iters, warmup) (None: no profiler).
    settings: warmup, iterations | duration_s, min_iterations, layer_iters, layer_warmup.
    progress(stage, done, total): optional callback.
    """
    progress = _throttled(progress) if progress else (lambda stage, done, total: None)
    reset_ok = reset_peak_rss()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    engine = open_fn()
    t1 = time.perf_counter()
    engine.infer(feeds[0])
    t2 = time.perf_counter()
    cold = {"load_ms": (t1 - t0) * 1e3, "first_inference_ms": (t2 - t1) * 1e3, "total_ms": (t2 - t0) * 1e3}
    warmup = int(settings.get("warmup", 10))
    for i in range(warmup):
        engine.infer(feeds[i % len(feeds)])
        progress("warm-up", i + 1, warmup)
    samples: list[float] = []
    duration = settings.get("duration_s")
    count = int(settings.get("iterations") or 0)
    min_count = int(settings.get("min_iterations", 10))
    start = time.perf_counter()
    i = 0
    while True:
        feed = feeds[i % len(feeds)]
        a = time.perf_counter()
        engine.infer(feed)
        samples.append((time.perf_counter() - a) * 1e3)
        i += 1
        if duration:
            elapsed = time.perf_counter() - start
            progress("timed runs", min(100, int(100 * elapsed / duration)), 100)
            if elapsed >= duration and i >= min_count:
                break
        else:
            progress("timed runs", i, count)
            if i >= count:
                break
    wall = time.perf_counter() - start
    memory = {"peak_rss_mb": peak_rss_mb(), "rss_before_load_mb": rss0, "peak_is_this_run": reset_ok}
    if rss0 is not None and reset_ok:  # RSS counters sync lazily: a few KiB of skew may show as negative
        memory["model_rss_mb"] = max(0.0, memory["peak_rss_mb"] - rss0)
    batch = next(iter(feeds[0].values())).shape[0]
    result = {"cold_start": cold, "samples_ms": samples, "latency_ms": latency_stats(samples),
              "throughput_ips": batch * len(samples) / sum(samples) * 1e3, "wall_s": wall, "memory": memory,
              "layers": None}
    layer_iters = int(settings.get("layer_iters", 0))
    if layer_iters > 0:
        progress("per-layer profile", 0, 1)
        prof = engine.profile(feeds, layer_iters, int(settings.get("layer_warmup", 2)))
        if prof is not None:
            memory["runtime"] = prof.pop("memory", {})
            result["layers"] = prof
        progress("per-layer profile", 1, 1)
    engine.close()
    return result


def _throttled(progress, every_s: float = 0.1):
    """Pass a stage's progress on at most every ``every_s`` (and always its start and end): a remote
    runner prints a line per call, and a 50 us model would print tens of thousands."""
    last = {"t": 0.0, "stage": None}

    def call(stage, done, total):
        now = time.perf_counter()
        if stage != last["stage"] or done >= total or now - last["t"] >= every_s:
            last["t"], last["stage"] = now, stage
            progress(stage, done, total)

    return call


def sweep(open_fn, images: np.ndarray, input_name: str, dtype: str, settings: dict, progress=None) -> list[dict]:
    """measure() for every (batch, threads) in the settings' sweeps. open_fn(threads) opens the bundle."""
    runs = []
    for batch in settings.get("batches", [1]):
        feeds = make_feeds(images, int(batch), input_name, dtype)
        for threads in settings.get("threads", [None]):
            tag = f"b{batch} t{threads or 'default'}"
            cb = (lambda s, d, t, tag=tag: progress(f"{tag} {s}", d, t)) if progress else None
            measured = measure(lambda t=threads: open_fn(t), feeds, settings, cb)
            runs.append({"batch": int(batch), "threads": threads, **measured})
    return runs


# ISA features that set a CPU's peak (x86 flags and aarch64 features as /proc/cpuinfo spells them)
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "fphp")


def cpu_info() -> dict:
    """This CPU as the device-descriptor registry needs it: vendor, model, family, ISA flags, MHz, cores."""
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"machine": platform.machine(), "vendor": "", "model": platform.processor(), "family": None,
            "flags": [], "mhz": None, "cores": cores}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    info["vendor"] = fields.get("vendor_id", fields.get("CPU implementer", ""))
    info["model"] = fields.get("model name", fields.get("Model", info["model"])) or info["machine"]
    if fields.get("cpu family", "").isdigit():
        info["family"] = int(fields["cpu family"])
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    info["flags"] = sorted(flags & set(ISA_FLAGS))
    try:  # the maximum clock where cpufreq exposes it; VMs often show only the nominal one
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            info["mhz"] = int(f.read()) / 1000
    except (OSError, ValueError):
        try:
            info["mhz"] = float(fields["cpu MHz"])
        except (KeyError, ValueError):
            pass
    return info


def environment() -> dict:
    import platform

    return {"hostname": platform.node(), "system": platform.system(), "python": platform.python_version(),
            "numpy": np.__version__, "cpu": cpu_info()}


def runtime_version(name: str) -> str | None:
    try:
        if name == "openvino":
            import openvino

            return openvino.get_version().split("-")[0]
        if name in ("executorch", "litert"):  # neither package carries __version__: their distributions do
            from importlib.metadata import PackageNotFoundError, version

            try:
                return version({"executorch": "executorch", "litert": "ai-edge-litert"}[name])
            except PackageNotFoundError:
                return None
        module = __import__(name)
        return getattr(module, "__version__", "?")
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Measure an edgekit bundle on this device (prints JSON).")
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--inputs", type=Path, required=True, help="float32 .npy (N, 1, C, H, W) pinned inputs")
    ap.add_argument("--settings", default="{}",
                    help="JSON: warmup, iterations|duration_s, batches, threads, layer_iters")
    args = ap.parse_args(argv)
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    settings = json.loads(args.settings)
    name = manifest.get("runtime", {}).get("name", "")

    def progress(stage, done, total):
        print(json.dumps({"progress": stage, "done": done, "total": total}), file=sys.stderr, flush=True)

    try:
        images = np.load(args.inputs)
        spec = manifest["inputs"][0]
        runs = sweep(lambda t: open_bundle(args.bundle, manifest, t), images, spec["name"],
                     spec.get("dtype", "float32"), settings, progress)
    except Exception as e:  # reported to the host as one line, with the runtime's own words
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(json.dumps({"protocol": PROTOCOL, "error": f"{e.__class__.__name__}: {first}"}))
        return 1
    print(json.dumps({"protocol": PROTOCOL, "environment": environment(),
                      "runtime": {"name": name, "version": runtime_version(name)}, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
