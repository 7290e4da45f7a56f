"""Measure one bundle on the machine this file runs on: the profiler's core, in one file.

This file is copied next to a bundle onto a device (`edgekit profile --remote`) and run there with
``python3 device_runner.py BUNDLE --inputs inputs.npy --settings '{...}'``; it prints one JSON object
on stdout and progress as JSON lines on stderr. It imports only the standard library, numpy and the
bundle's runtime (onnxruntime, openvino or tensorrt), never edgekit, so it runs on a Jetson or a
board that has nothing else. edgekit imports the same functions for local profiling, so local and
remote figures come from the same loop and the same readers of each runtime's own profiler.

Shapes: ``inputs.npy`` is float32 (N, 1, C, H, W): N preprocessed calibration images at batch 1;
a run at batch B feeds images i..i+B-1 (cyclically), rotating through the N pinned batches.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


# ---------------------------------------------------------------- runtime profilers -> layer records
# A record: {"name", "op_type", "kernel", "time_ms" (per inference: the profile's "statistic", median or
#            mean, over its iterations), "calls" (per inference),
#            "onnx_nodes" (names the runtime says it fused into this layer), "inputs"/"outputs" (tensors, ORT)}

def parse_ort_trace(events: list[dict], skip_runs: int) -> tuple[list[dict], dict]:
    """ONNX Runtime's profiler trace (chrome-trace JSON) -> per-layer records over the runs after
    ``skip_runs``; also the arena peak ORT reports. Node events are assigned to the model_run that
    encloses them."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    runs = runs[skip_runs:]
    per_run: list[dict[str, list]] = [{} for _ in runs]
    meta: dict[str, dict] = {}
    arena = 0
    starts = [r[0] for r in runs]
    import bisect

    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        arena = max(arena, int(args.get("mem_arena_held", 0) or 0))
        k = bisect.bisect_right(starts, e["ts"]) - 1
        if k < 0 or e["ts"] > runs[k][1]:
            continue  # a warm-up run's node
        name = e["name"][: -len("_kernel_time")]
        per_run[k].setdefault(name, []).append(e["dur"] / 1000.0)
        meta.setdefault(name, {"op_type": args.get("op_name", "?"), "kernel": args.get("provider", ""),
                               "index": len(meta)})
    records = []
    for name, m in sorted(meta.items(), key=lambda kv: kv[1]["index"]):
        totals = [sum(r[name]) for r in per_run if name in r]
        calls = [len(r[name]) for r in per_run if name in r]
        records.append({"name": name, "op_type": m["op_type"], "kernel": m["kernel"],
                        "time_ms": float(np.median(totals)), "calls": int(np.median(calls)), "onnx_nodes": []})
    return records, {"arena_peak_mb": arena / 2**20} if arena else {}


def attach_ort_io(records: list[dict], optimized_model: Path) -> None:
    """Give each ORT record the input and output tensors of its node in ORT's optimized graph, so the
    host can find which original ONNX nodes it fused. Needs the onnx package; skipped without it."""
    try:
        import onnx
    except ImportError:
        return
    if not optimized_model.is_file():
        return
    graph = onnx.load(str(optimized_model), load_external_data=False).graph
    io = {n.name: ([i for i in n.input if i], [o for o in n.output if o]) for n in graph.node}
    for r in records:
        if r["name"] in io:
            r["inputs"], r["outputs"] = io[r["name"]]


def ort_layers(session, feeds: list[dict], iters: int, warmup: int, optimized_model: Path | None = None) -> dict:
    """Run a session created with profiling enabled; per-layer records from ORT's own profiler."""
    for i in range(warmup + iters):
        session.run(None, feeds[i % len(feeds)])
    trace = session.end_profiling()
    try:
        with open(trace) as f:
            records, memory = parse_ort_trace(json.load(f), warmup)
    finally:
        os.remove(trace)
    if optimized_model is not None:
        attach_ort_io(records, optimized_model)
    return {"profiler": "onnxruntime profiling", "statistic": "median", "iterations": iters, "records": records,
            "memory": memory}


def _ov_averages(request) -> dict:
    return {p.node_name: (p.real_time.total_seconds() * 1e3, p.node_type, p.exec_type)
            for p in request.profiling_info if str(p.status).split(".")[-1] == "EXECUTED"}


def ov_layers(compiled, request, feeds: list[dict], iters: int, warmup: int) -> dict:
    """OpenVINO performance counters (PERF_COUNT) over ``iters`` inferences after ``warmup``.

    The CPU plugin reports each layer's *running average since compilation* (first inference,
    weight repacking and warm-up included), so the profiled window's mean is recovered from the
    averages read after warm-up and at the end: (avg_end * (w + n) - avg_w * w) / n. The runtime
    model's ``originalLayersNames`` names the IR (= ONNX) nodes each executed layer fused."""
    for i in range(warmup):
        request.infer(feeds[i % len(feeds)])
    before = _ov_averages(request) if warmup else {}
    for i in range(iters):
        request.infer(feeds[i % len(feeds)])
    after = _ov_averages(request)
    fused = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "originalLayersNames" in info:
            fused[op.get_friendly_name()] = [s for s in info["originalLayersNames"].astype(str).split(",") if s]
    records = []
    for name, (avg, node_type, exec_type) in after.items():
        total = avg * (warmup + iters) - before.get(name, (0.0,))[0] * warmup
        records.append({"name": name, "op_type": node_type, "kernel": exec_type, "time_ms": max(total / iters, 0.0),
                        "calls": 1, "onnx_nodes": fused.get(name, [])})
    return {"profiler": "openvino performance counters", "statistic": "mean", "iterations": iters, "records": records,
            "memory": {}}


def trt_layer_names(layer_name: str) -> list[str]:
    """TensorRT names a fused layer after its ONNX nodes, joined by ' + ' (and wraps foreign nodes
    as '{ForeignNode[a...b]}'); reformat layers name tensors. -> the ONNX node names it mentions."""
    inner = re.sub(r"^\{ForeignNode\[(.*)\]\}$", r"\1", layer_name.strip())
    parts = re.split(r" \+ |\.\.\.", inner)
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("Reformatting CopyNode")]


# ---------------------------------------------------------------- runtime adapters (device side)
# Each opens a bundle file as the manifest says and offers infer(feeds) and profile(feeds, iters, warmup),
# the same surface as edgekit's target runners.

class OrtEngine:
    def __init__(self, path: Path, options: dict, threads: int | None, profile_dir: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                              options.get("graph_optimization_level", "ORT_ENABLE_ALL"))
        if threads:
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.log_severity_level = 3
        if profile_dir is not None:
            so.enable_profiling = True
            so.profile_file_prefix = str(profile_dir / "ort_profile")
            so.optimized_model_filepath = str(profile_dir / "optimized.onnx")
        available = ort.get_available_providers()
        providers = [p for p in options.get("providers", ["CPUExecutionProvider"]) if p in available]
        self.path, self.options, self.threads = path, options, threads
        self.session = ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def infer(self, feeds: dict) -> list:
        return self.session.run(None, feeds)

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            eng = OrtEngine(self.path, self.options, self.threads, Path(tmp))
            return ort_layers(eng.session, feeds, iters, warmup, Path(tmp) / "optimized.onnx")

    def close(self) -> None:
        return None


class OvEngine:
    def __init__(self, path: Path, options: dict, threads: int | None, perf_counters: bool = False):
        import openvino as ov

        core = ov.Core()
        self.device = options.get("device", "CPU")
        hint = options.get("inference_precision", "f32")
        caps = core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")
        if {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}.get(hint, "FP32") not in caps:
            hint = "f32"  # what edgekit's runner does: the device lacks that compute
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if perf_counters:
            config["PERF_COUNT"] = True
        self.path, self.options, self.threads = path, options, threads
        self.compiled = core.compile_model(core.read_model(str(path)), self.device, config)
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]

    def infer(self, feeds: dict) -> list:
        self.request.infer(feeds)
        return [np.array(self.request.get_output_tensor(i).data) for i in range(len(self.compiled.outputs))]

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        eng = OvEngine(self.path, self.options, self.threads, perf_counters=True)
        return ov_layers(eng.compiled, eng.request, feeds, iters, warmup)

    def close(self) -> None:
        return None


class TrtEngine:
    """A serialized TensorRT engine run with execute_v2 on buffers from cuda-python's runtime API.
    Per-layer times come from TensorRT's IProfiler (names are the ONNX nodes it fused). ``options`` is the
    bundle's runtime_options: ``version_compatible`` and ``dla_core`` say how the engine must be loaded."""

    def __init__(self, path: Path, options: dict, threads: int | None):
        import tensorrt as trt

        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError:
                raise RuntimeError("TensorRT profiling needs cuda-python on the device: "
                                   "pip install cuda-python") from None
        self.trt, self.cudart = trt, cudart
        logger = trt.Logger(trt.Logger.ERROR)
        self.runtime = trt.Runtime(logger)  # kept: a runtime must outlive its engines
        if options.get("version_compatible"):  # the lean runtime inside is host code, refused unless allowed
            self.runtime.engine_host_code_allowed = True
        if options.get("dla_core") is not None:
            self.runtime.DLA_core = int(options["dla_core"])
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT {trt.__version__} cannot load {Path(path).name}: built by another TensorRT "
                               f"version or for another GPU (the bundle's manifest.json runtime says which)")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.buffers: dict[str, tuple[int, int]] = {}

    def _ptr(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self.cudart.cudaFree(ptr)
            err, ptr = self.cudart.cudaMalloc(nbytes)
            self.buffers[name] = (ptr, nbytes)
        return self.buffers[name][0]

    def infer(self, feeds: dict) -> list:
        trt, cudart = self.trt, self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self.input_names:
            x = np.ascontiguousarray(feeds[n])
            self.context.set_input_shape(n, x.shape)
            cudart.cudaMemcpy(self._ptr(n, x.nbytes), x.ctypes.data, x.nbytes, h2d)
        outputs, bindings = [], []
        for n in self.names:
            if n not in self.input_names:
                shape = tuple(self.context.get_tensor_shape(n))
                out = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(n)))
                outputs.append((n, out))
            bindings.append(self.buffers[n][0] if n in self.input_names else self._ptr(n, out.nbytes))
        self.context.execute_v2(bindings)
        for n, out in outputs:
            cudart.cudaMemcpy(out.ctypes.data, self.buffers[n][0], out.nbytes, d2h)
        return [o for _, o in outputs]

    def profile(self, feeds: list[dict], iters: int = 10, warmup: int = 2) -> dict:
        trt = self.trt
        times: dict[str, list[float]] = {}

        class _Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name, ms):
                times.setdefault(layer_name, []).append(ms)

        for i in range(warmup):
            self.infer(feeds[i % len(feeds)])
        self.context.profiler = _Profiler()
        for i in range(iters):
            self.infer(feeds[i % len(feeds)])
        self.context.profiler = None
        records = [{"name": n, "op_type": "TensorRT layer", "kernel": "", "time_ms": float(np.median(ts)),
                    "calls": max(1, len(ts) // max(iters, 1)), "onnx_nodes": trt_layer_names(n)}
                   for n, ts in times.items()]
        memory = {"device_activation_mb": self.engine.device_memory_size_v2 / 2**20}
        return {"profiler": "tensorrt IProfiler", "statistic": "median", "iterations": iters, "records": records,
                "memory": memory}

    def close(self) -> None:
        for ptr, _ in self.buffers.values():
            self.cudart.cudaFree(ptr)
        self.buffers.clear()


ENGINES = {"onnxruntime": OrtEngine, "openvino": OvEngine, "tensorrt": TrtEngine}


def open_engine(bundle: Path, manifest: dict, threads: int | None):
    runtime = manifest.get("runtime", {})
    name = runtime.get("name", "")
    if name not in ENGINES:
        raise RuntimeError(f"the device runner cannot run {name or 'unknown'} bundles (it runs {', '.join(ENGINES)})")
    if name == "tensorrt" and runtime.get("artifact") == "onnx":
        raise RuntimeError("this TensorRT bundle holds ONNX only (--onnx-only): build its engine on the device first")
    return ENGINES[name](bundle / manifest["files"][0]["path"], manifest.get("runtime_options", {}), threads)


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
        runs = sweep(lambda t: open_engine(args.bundle, manifest, t), images, spec["name"],
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
