"""Shared measurement for scripts/bench_export.py and scripts/bench_zoo.py.

For one model source: export to ONNX Runtime and OpenVINO (fp32, rewrites on, parity gate on the
bundled photographs), then, at 1 and 2 threads, PyTorch eager and both bundles timed by edgekit's timing
harness (edgekit/engines/timing.py): run by run in alternation on the same pinned input (a bundled
photograph, never zeros), in one process, PyTorch also timed twice as the A/A control; each runtime's
speedup over PyTorch comes with its 95% bootstrap interval.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

def gemm_peak(threads: int, dtype=torch.float32, n: int = 2048, runs: int = 5) -> float:
    """This CPU's GEMM peak in GFLOP/s: the best of ``runs`` n^3 matmuls in PyTorch at ``threads``."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


@dataclass
class ModelRow:
    source: str
    task: str = ""
    input_shape: list = field(default_factory=list)
    params_m: float = 0.0
    gflops: float = 0.0
    export_s: dict = field(default_factory=dict)  # target -> seconds (whole edgekit export incl. parity)
    size_mb: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)  # target -> {cosine_min, max_abs_rel, agreement}
    ms: dict = field(default_factory=dict)  # "torch@1" / "onnx@2" / "openvino@1" -> median ms
    vs_torch: dict = field(default_factory=dict)  # "onnx@2" -> [torch / runtime median, low, high] (95% CI)
    noise: dict = field(default_factory=dict)  # "@2" -> the A/A control [ratio, low, high]
    error: str = ""


def measure(source: str, threads=(1, 2), warmup: int = 5, iters: int = 30, input_shape: str | None = None) -> ModelRow:
    import edgekit
    from edgekit.calib import load_calibration
    from edgekit.flops import count_params
    from edgekit.stages.onnx_export import prepare_for_deploy
    from edgekit.sources import load_source

    row = ModelRow(source)
    src = load_source(source, input_shape=tuple(int(v) for v in input_shape.split("x")) if input_shape else None)
    row.task, row.input_shape = src.spec.task.value, list(src.spec.input_shape)
    model = prepare_for_deploy(src.model)
    row.params_m = round(count_params(model) / 1e6, 2)
    x = load_calibration(None, src.spec.preprocess, size=1).inputs[0]
    with tempfile.TemporaryDirectory() as tmp:
        for target in ("onnx", "openvino"):
            t0 = time.perf_counter()
            b = edgekit.export(source, target, Path(tmp) / target, input_shape=input_shape, verify=False)
            row.export_s[target] = round(time.perf_counter() - t0, 1)
            row.size_mb[target] = round(sum(f["bytes"] for f in b.manifest["files"]) / 1e6, 1)
            p = b.manifest["parity"]
            row.parity[target] = {"cosine_min": p["cosine_min"], "max_abs_rel": p["max_abs_rel"],
                                  "agreement": p["agreement"], "passed": p["passed"]}
            row.gflops = round(b.manifest["model"]["flops"] / 1e9, 3)
        from edgekit.engines.timing import compare, interleave

        xt = torch.from_numpy(x)
        for n in threads:
            torch.set_num_threads(n)
            runners = {target: edgekit.runtime.load(Path(tmp) / target, threads=n) for target in ("onnx", "openvino")}
            try:
                with torch.no_grad():
                    samples = interleave({"torch": lambda: model(xt), **{t: (lambda r=r: r.infer(x))
                                                                         for t, r in runners.items()}},
                                         baseline="torch", rounds=iters, warmup=warmup, settle=1)
            finally:
                for r in runners.values():
                    r.close()
            result = compare(samples, "torch")
            for r in result.rows:
                row.ms[f"{r.name}@{n}"] = round(r.median_ms, 2)
                if r.ratio is not None:
                    row.vs_torch[f"{r.name}@{n}"] = [round(r.ratio.value, 2), round(r.ratio.low, 2),
                                                     round(r.ratio.high, 2)]
            row.noise[f"@{n}"] = [round(result.noise.value, 2), round(result.noise.low, 2), round(result.noise.high, 2)]
    return row


def run_all(sources: list[str], threads, warmup: int, iters: int, input_shape: str | None = None,
            partial: Path | None = None) -> list[ModelRow]:
    """Measure each source; with ``partial``, append each row to that JSON-lines file as it completes
    (so a long run that is interrupted keeps what it measured)."""
    import json

    from rich.progress import track

    rows = []
    for s in track(sources, description="measuring", transient=True):
        try:
            rows.append(measure(s, threads, warmup, iters, input_shape))
        except Exception as e:  # one failing model must not lose the others' figures
            rows.append(ModelRow(s, error=f"{e.__class__.__name__}: {str(e)[:160]}"))
        if partial is not None:
            with open(partial, "a") as f:
                f.write(json.dumps(asdict(rows[-1])) + "\n")
    return rows


def load_avg() -> str:
    import os

    return "load average %.2f %.2f %.2f" % os.getloadavg()


def to_json(rows: list[ModelRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def environment(runtimes=("torch", "onnxruntime", "openvino"), threads: str = "threads per column") -> str:
    """The CPU (model, cores, ISA flags) and runtime versions the figures were measured on."""
    from edgekit.engines.measure import runtime_version
    from edgekit.engines.timing import environment_line

    return environment_line({n: runtime_version(n) for n in runtimes}, threads)
