"""Target registry: Target -> backend instance."""
from __future__ import annotations

from edgekit.config import Target
from edgekit.targets.base import BuildResult, Runner, TargetBackend


def get_backend(target: Target, options: dict | None = None) -> TargetBackend:
    """The backend of ``target``; TensorRT and CoreML parse their ``options`` (target_options) here, at the edge."""
    if target is Target.ONNX:
        from edgekit.targets.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if target is Target.OPENVINO:
        from edgekit.targets.openvino import OpenVinoBackend

        return OpenVinoBackend()
    if target is Target.TRT:
        from edgekit.targets.tensorrt import TensorRtBackend

        return TensorRtBackend(options)
    if target is Target.COREML:
        from edgekit.targets.coreml import CoreMlBackend

        return CoreMlBackend(options)
    raise ValueError(target)


__all__ = ["BuildResult", "Runner", "TargetBackend", "get_backend"]
