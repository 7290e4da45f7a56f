"""Quantization: calibration methods, precision islands, per-target INT8 recipes, sensitivity and budget.

Public entry points (the CLI and the targets call these):

- :class:`QuantOptions`, :class:`Method`: what to do (method, --keep-fp, --max-drop);
- :func:`find_islands`: the nodes kept in higher precision, with reasons;
- :func:`quantize_int8`: calibrate, choose the target's recipe, keep to the budget -> QDQ ONNX;
- :func:`tensorrt_qdq`: QDQ ONNX placed for TensorRT's int8 fusions (the TensorRT target calls it);
- :func:`coreml_quantize`: int8 weights (and activations where supported) of a CoreML model.
"""
from edgekit.quant.coreml import coreml_quantize
from edgekit.quant.int8 import quantize_int8
from edgekit.quant.islands import Island, find_islands
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.tensorrt import tensorrt_qdq

__all__ = ["Island", "Method", "QuantOptions", "coreml_quantize", "find_islands", "quantize_int8", "tensorrt_qdq"]
