"""Collect activation statistics of an fp32 ONNX model on a calibration set, and cache the ranges.

Every float tensor a node produces is made a graph output and the model is run with ONNX Runtime
on the calibration inputs: a first pass records each tensor's min and max, a second (for the
histogram methods) a ``BINS``-bin histogram over that range. Ranges are cached on disk (see
:func:`cache_dir`), keyed by the model's hash, the set's
hash and the method with its parameters, so re-quantizing the same model on the same images
(another target, a different island set, another --max-drop) does not run calibration again.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from edgekit.errors import EdgekitFailure
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.ranges import BINS, TensorStats, compute_range

Ranges = dict[str, tuple[float, float]]
# tensors of these ops are shapes, indices or masks, never activations worth a range
_NON_ACTIVATION_OPS = {"Shape", "Size", "Constant", "ConstantOfShape", "NonZero", "ArgMax", "ArgMin", "TopK", "Range"}


def model_hash(proto: onnx.ModelProto) -> str:
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def activation_tensors(proto: onnx.ModelProto) -> list[str]:
    """Names of the float activations: graph inputs and float outputs of (non-constant) nodes."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    inits = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    for node in proto.graph.node:
        if node.op_type in _NON_ACTIVATION_OPS:
            continue
        for out in node.output:
            if out and types.get(out, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT:
                names.append(out)
    return list(dict.fromkeys(names))


def _session(proto: onnx.ModelProto, tensors: list[str], threads: int | None):
    import onnxruntime as ort

    from edgekit.debug.graph_taps import with_outputs

    model = with_outputs(proto, tensors)  # float activations only (activation_tensors): exposed as they are
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types
        raise EdgekitFailure(f"calibration: ONNX Runtime cannot run the fp32 model: {str(e).splitlines()[0][:300]}") from None


def collect_stats(proto: onnx.ModelProto, inputs: list[np.ndarray], histograms: bool = True,
                  tensors: list[str] | None = None, threads: int | None = None,
                  advance: Callable[[], None] | None = None) -> dict[str, TensorStats]:
    """Per-tensor min/max (and histograms) over ``inputs``, each preprocessed (1, C, H, W) float32."""
    from edgekit.stages.parity import batches

    tensors = tensors or activation_tensors(proto)
    sess = _session(proto, tensors, threads)
    feed_name = sess.get_inputs()[0].name
    dim0 = sess.get_inputs()[0].shape[0]
    batch = dim0 if isinstance(dim0, int) and dim0 > 0 else 1
    groups = batches(inputs, batch)
    names = [o.name for o in sess.get_outputs()]
    wanted = [names.index(t) for t in tensors if t in names]
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for x in groups:
        outs = sess.run(None, {feed_name: x})
        for i in wanted:
            v = outs[i]
            if v.size:
                lo[names[i]] = min(lo[names[i]], float(v.min()))
                hi[names[i]] = max(hi[names[i]], float(v.max()))
        if advance and not histograms:
            advance()
    stats = {t: TensorStats(float(lo[t]), float(hi[t])) for t in tensors if np.isfinite(lo[t]) and np.isfinite(hi[t])}
    if histograms:
        for s in stats.values():
            s.hist = np.zeros(BINS, np.int64)
        for x in groups:
            outs = sess.run(None, {feed_name: x})
            for i in wanted:
                s = stats.get(names[i])
                if s is None or s.hi <= s.lo:
                    continue
                idx = ((outs[i].ravel().astype(np.float64) - s.lo) * (BINS / (s.hi - s.lo))).astype(np.int64)
                s.hist += np.bincount(np.clip(idx, 0, BINS - 1), minlength=BINS)
            if advance:
                advance()
    return stats


def cache_dir() -> Path:
    """``$EDGEKIT_CALIB_CACHE``, else ``$EDGEKIT_CACHE/calib``, else ``~/.cache/edgekit/calib``."""
    if os.environ.get("EDGEKIT_CALIB_CACHE"):
        return Path(os.environ["EDGEKIT_CALIB_CACHE"])
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "calib"


def cache_key(model_sha: str, set_sha: str, options: QuantOptions) -> str:
    return f"{model_sha[:16]}-{set_sha[:16]}-{options.method_key()}"


def calibrate(proto: onnx.ModelProto, inputs: list[np.ndarray], set_sha: str, options: QuantOptions,
              threads: int | None = None, advance: Callable[[], None] | None = None) -> tuple[Ranges, dict]:
    """Activation ranges of every float tensor for ``options.method``; returns (ranges, info) where info
    says whether the cache was used and its key."""
    key = cache_key(model_hash(proto), set_sha, options)
    path = cache_dir() / f"{key}.json"
    if options.cache and path.is_file():
        try:
            data = json.loads(path.read_text())
            return {k: (float(a), float(b)) for k, (a, b) in data["ranges"].items()}, {"cache": "hit", "key": key}
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is recomputed and overwritten
    stats = collect_stats(proto, inputs, histograms=options.method is not Method.MINMAX, threads=threads,
                          advance=advance)
    ranges = {t: compute_range(s, options.method, options.percentile) for t, s in stats.items()}
    if options.cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"method": options.method_key(), "ranges": ranges}))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old entry or the new one
    return ranges, {"cache": "miss" if options.cache else "off", "key": key}
