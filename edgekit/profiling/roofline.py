"""Roofline figures of a run: model FLOPs and minimal bytes moved at the profiled shape, achieved
GFLOP/s and the fraction of the device's peak.

FLOPs are the bundle's ``model.flops`` (PyTorch's FLOP counter at the exported shape: matmuls and
convolutions, 2 per multiply-accumulate), scaled by batch. Minimal bytes are what any execution
must move at least once: the weights as stored in the bundle, the input and the output; real
traffic (activations spilling out of cache) is higher, so the intensity is an upper bound.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.manifest import Manifest, as_manifest
from edgekit.profiling.devices import DeviceSpec


def _numel(shape: list, batch: int) -> int:
    dims = [batch if i == 0 else d for i, d in enumerate(shape)]
    return int(np.prod([d if isinstance(d, int) and d > 0 else 1 for d in dims]))


def weight_bytes(bundle: Path, manifest: Manifest) -> int:
    """Bytes of the weights as the runtime loads them: ONNX initializers, OpenVINO's .bin blob, or
    the engine file for runtimes that store weights inside it."""
    manifest = as_manifest(manifest)
    files = manifest.files
    first = bundle / files[0].path
    if first.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(first), load_external_data=False).graph
        return int(sum(int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
                       for t in graph.initializer))
    bins = [f.bytes or 0 for f in files if f.path.endswith(".bin")]
    return int(sum(bins) if bins else sum(f.bytes or 0 for f in files))


def bundle_cost(bundle: Path, manifest: Manifest, size: tuple[int, int] | None = None) -> dict:
    """Per-image FLOPs and I/O bytes, and the weight bytes, of a bundle; at ``size`` (H, W) inside its shape
    envelope, the FLOPs are the export size's scaled by the pixel count (exact for convolutions; attention over
    all tokens grows faster) and the symbolic height and width of each map take that size (over its stride)."""
    manifest = as_manifest(manifest)
    batch0 = manifest.batch if isinstance(manifest.batch, int) and manifest.batch > 0 else 1
    flops = manifest.model.flops
    export_hw = tuple(manifest.preprocess["size"])
    if size and flops:
        flops = flops * (size[0] * size[1]) / (export_hw[0] * export_hw[1])

    def io(specs, inputs: bool = False):
        total = 0
        for s in specs:
            shape = list(s.shape)
            if size and len(shape) == 4:
                stride = 1 if inputs else max(1, s.extra.get("stride") or manifest.model.extra.get("output_stride") or 1)
                shape[2:] = [d if isinstance(d, int) else size[k] // stride for k, d in enumerate(shape[2:])]
            total += _numel(shape, 1) * np.dtype(s.dtype).itemsize
        return total

    return {"flops_per_image": flops / batch0 if flops else None, "weight_bytes": weight_bytes(bundle, manifest),
            "input_bytes_per_image": io(manifest.inputs, inputs=True), "output_bytes_per_image": io(manifest.outputs)}


def roofline(cost: dict, batch: int, median_ms: float, device: DeviceSpec, precision: str,
             threads: int | None) -> dict:
    """Figures of one run. attainable = min(peak, intensity x bandwidth) where the device has a
    published bandwidth; fraction_of_peak = achieved / peak at the threads the run used."""
    flops = cost["flops_per_image"] * batch if cost.get("flops_per_image") else None
    nbytes = cost["weight_bytes"] + batch * (cost["input_bytes_per_image"] + cost["output_bytes_per_image"])
    peak, compute = device.peak(precision, threads)
    out = {"flops": flops, "bytes": nbytes, "intensity": flops / nbytes if flops else None,
           "achieved_gflops": flops / (median_ms * 1e-3) / 1e9 if flops and median_ms > 0 else None,
           "peak_gflops": peak, "peak_precision": compute, "fraction_of_peak": None, "attainable_gflops": peak,
           "bound": None}
    if out["achieved_gflops"] is not None and peak:
        out["fraction_of_peak"] = out["achieved_gflops"] / peak
    if out["intensity"] is not None and peak and device.bandwidth_gbs:
        memory_roof = out["intensity"] * device.bandwidth_gbs
        out["attainable_gflops"] = min(peak, memory_roof)
        out["bound"] = "memory" if memory_roof < peak else "compute"
    elif peak:
        out["bound"] = "compute"  # no bandwidth figure: only the compute roof is known
    return out
