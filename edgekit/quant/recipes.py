"""Per-target INT8 recipes: candidate ways to quantize, each a function of the nodes kept in float.

A target's int8 plan names the function below that offers its candidates; edgekit scores each on the
target's runtime (agreement and cosine with fp32 on the calibration set, and latency) and keeps the
fastest that meets the budget, else the most accurate. Nothing is assumed: measured on an AMD EPYC
(Zen 4), NNCF's default preset wrecked linear attention and its transformer preset hurt Swin, and ONNX
Runtime's default S8S8 ran slower than fp32 while U8S8 ran 2x faster.

- ONNX Runtime: edgekit's QDQ with the chosen ranges, uint8 activations (U8S8) and int8 (S8S8). In
  edgekit's QDQ an int8 MatMul / Gemm writes float where a float op reads it (no Q/DQ pair there), and a
  Hardswish between uint8 layers is written as int8 ops (:mod:`edgekit.quant.hardswish`).
- OpenVINO: NNCF (ONNX backend, CPU hardware config, fast bias correction) with the islands as
  ignored scope, with its default preset and with its transformer model type; and edgekit's QDQ.
  OpenVINO reads the QDQ ONNX into FakeQuantize and runs int8 kernels.
- TensorRT: :func:`edgekit.quant.tensorrt.tensorrt_qdq` (symmetric int8 placed for its fusions).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgekit.errors import EdgekitFailure
from edgekit.quant.options import Method, QuantOptions
from edgekit.quant.qdq import FLOAT_OUTPUT_OPS, QdqRecipe, quantize_qdq

Make = Callable[[set[str]], onnx.ModelProto]  # nodes kept in float -> quantized model


@dataclass
class Candidate:
    name: str
    describe: dict
    make: Make
    tried: dict = field(default_factory=dict)  # its score when scored
    float_nodes: dict[str, str] = field(default_factory=dict)  # node -> op type the recipe itself leaves float


def qdq_recipes(proto: onnx.ModelProto, ranges: dict, options: QuantOptions, *, int8_hardswish: bool,
                s8: bool = False, dense: bool = False) -> list[Candidate]:
    """edgekit's own QDQ recipes from the calibrated ``ranges``: uint8 activations (U8S8); with ``s8`` int8
    activations too (S8S8); with ``dense`` U8S8 with the depthwise convolutions left in float, when there are
    any. ``int8_hardswish``: a Hardswish between uint8 layers is written as int8 ops
    (:mod:`edgekit.quant.hardswish`)."""
    method = {"activation_ranges": options.method_key()}
    # int8 MatMul / Gemm write float where a float op reads them: faster and one rounding fewer on both
    # runtimes (trained full-width Swin-T at 256, OpenVINO 1T: 50.1 -> 46.8 ms, cosine min 0.99990 -> 0.99998)
    u8 = QdqRecipe(activation="u8", float_output_ops=FLOAT_OUTPUT_OPS, int8_hardswish=int8_hardswish)
    out = [Candidate("edgekit-u8s8", {**method, **u8.to_dict()}, lambda keep: quantize_qdq(proto, ranges, keep, u8))]
    if s8:
        s8_recipe = QdqRecipe(activation="s8", float_output_ops=FLOAT_OUTPUT_OPS)
        out.append(Candidate("edgekit-s8s8", {**method, **s8_recipe.to_dict()},
                             lambda keep: quantize_qdq(proto, ranges, keep, s8_recipe)))
    if dense:
        from edgekit.quant.islands import depthwise_convs

        dw = depthwise_convs(proto)
        if dw:
            out.append(Candidate("edgekit-u8s8-dense", {**method, **u8.to_dict(), "depthwise_convs": "float"},
                                 lambda keep: quantize_qdq(proto, ranges, keep | set(dw), u8), float_nodes=dw))
    return out


def onnxruntime_recipes(proto: onnx.ModelProto, inputs: list[np.ndarray], ranges: dict,
                        options: QuantOptions) -> list[Candidate]:
    """ONNX Runtime: U8S8 and S8S8 (its default; no int8 Add / Mul kernels, so they stay float), and U8S8
    without int8 depthwise convolutions (its int8 depthwise path plus its Q/DQ measured slower than fp32 on
    EfficientViT). It has no int8 Hardswish: between uint8 layers that is written as int8 ops it has."""
    return qdq_recipes(proto, ranges, options, int8_hardswish=True, s8=True, dense=True)


def openvino_recipes(proto: onnx.ModelProto, inputs: list[np.ndarray], ranges: dict,
                     options: QuantOptions) -> list[Candidate]:
    """OpenVINO: NNCF's recipes first, then edgekit's U8S8 (OpenVINO fuses a Hardswish into the convolution as
    it is)."""
    return nncf_candidates(proto, inputs, options) + qdq_recipes(proto, ranges, options, int8_hardswish=False)


def tensorrt_recipes(proto: onnx.ModelProto, inputs: list[np.ndarray], ranges: dict,
                     options: QuantOptions) -> list[Candidate]:
    """TensorRT: symmetric int8 placed for its fusions (:mod:`edgekit.quant.tensorrt`)."""
    from edgekit.quant.tensorrt import TRT_RECIPE, trt_qdq_from_ranges

    method = {"activation_ranges": options.method_key()}
    return [Candidate("edgekit-trt-s8s8", {**method, **TRT_RECIPE.to_dict(), "placement": "TensorRT fusions"},
                      lambda keep: trt_qdq_from_ranges(proto, ranges, keep))]


def generic_recipes(proto: onnx.ModelProto, inputs: list[np.ndarray], ranges: dict,
                    options: QuantOptions) -> list[Candidate]:
    """edgekit's U8S8 alone: for a target whose int8 is not a QDQ graph (CoreML quantizes weights with
    coremltools), this ranks blocks for `edgekit quantize --sensitivity`."""
    return qdq_recipes(proto, ranges, options, int8_hardswish=False)


def nncf_candidates(proto: onnx.ModelProto, inputs: list[np.ndarray], options: QuantOptions) -> list[Candidate]:
    """NNCF recipes for OpenVINO: default preset and transformer model type, islands as ignored scope."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        return []
    estimator = _nncf_estimator(options)
    base = {"tool": "nncf", "backend": "onnx", "target_device": "CPU", "fast_bias_correction": True,
            "activation_ranges": estimator[0]}
    return [Candidate("nncf-performance", {**base, "preset": "performance"},
                      lambda keep: _nncf(proto, inputs, keep, None, estimator[1])),
            Candidate("nncf-transformer", {**base, "preset": "mixed", "model_type": "transformer (SmoothQuant)"},
                      lambda keep: _nncf(proto, inputs, keep, "transformer", estimator[1]))]


def _nncf_estimator(options: QuantOptions):
    """NNCF's activation range estimator nearest to --method: (description, parameters or None)."""
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if options.method is Method.MINMAX:
        return "nncf min-max", RangeEstimatorParametersSet.MINMAX
    if options.method is Method.MSE:
        return "nncf histogram (MSE search)", RangeEstimatorParametersSet.HISTOGRAM
    if options.method is Method.PERCENTILE:
        return "nncf mean quantile", RangeEstimatorParametersSet.MEAN_QUANTILE
    return "nncf default (entropy is not an NNCF estimator; the edgekit candidate uses it)", None


def _nncf(proto: onnx.ModelProto, inputs: list[np.ndarray], keep: set[str], model_type: str | None,
          estimator) -> onnx.ModelProto:
    import logging

    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    from edgekit.plugins_bridge import inline_plugin_functions

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = _fold_initializer_casts(inline_plugin_functions(proto))
    name = model.graph.input[0].name
    existing = {n.name for n in model.graph.node}
    keep = keep | plugin_bodies(proto, model, keep)  # a plugin island is its inlined body
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=estimator) if estimator else None
    try:
        with _nncf_bars_off():
            q = nncf.quantize(model, nncf.Dataset(inputs, lambda x: {name: x}), target_device=nncf.TargetDevice.CPU,
                              subset_size=len(inputs),
                              model_type=nncf.ModelType.TRANSFORMER if model_type == "transformer" else None,
                              ignored_scope=nncf.IgnoredScope(names=sorted(keep & existing), validate=False),
                              advanced_parameters=advanced)
    except Exception as e:  # NNCF raises many kinds on graphs it cannot handle
        raise EdgekitFailure(f"NNCF quantization failed: {e.__class__.__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    q.ir_version = proto.ir_version
    return q


@contextlib.contextmanager
def _nncf_bars_off():
    """NNCF draws its own progress bars (statistics, SmoothQuant, bias correction) for every call; inside
    edgekit's own progress (one step per recipe and per block) they are a screenful of noise per recipe.
    NNCF has no switch for them, so its progress classes are swapped for disabled ones while it runs."""
    try:
        from nncf.common.logging import track_progress as tp
    except ImportError:  # another NNCF layout: its bars show, nothing else changes
        yield
        return
    originals = {n: getattr(tp, n) for n in ("Progress", "WeightedProgress") if hasattr(tp, n)}

    def quiet(cls):
        class Quiet(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **{**kwargs, "disable": True})
        return Quiet

    for n, cls in originals.items():
        setattr(tp, n, quiet(cls))
    try:
        yield
    finally:
        for n, cls in originals.items():
            setattr(tp, n, cls)


def plugin_bodies(proto: onnx.ModelProto, inlined: onnx.ModelProto, keep: set[str]) -> set[str]:
    """Names of the nodes in ``inlined`` (``inline_plugin_functions(proto)``) that came from a kept plugin node."""
    from edgekit.plugins_bridge import PLUGIN_DOMAIN

    calls = {n.name for n in proto.graph.node if n.domain == PLUGIN_DOMAIN and n.name in keep}
    if not calls:
        return set()
    from edgekit.plugins import inlined_from

    return {n.name for n in inlined.graph.node if any(inlined_from(c, n.name) for c in calls)}


def _fold_initializer_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace ``Cast(initializer)`` by the cast initializer.

    NNCF's ONNX preprocessing (``eliminate_nop_cast``) reads ``.type`` of a Cast's input and fails with
    ``AttributeError: type`` when that input is an initializer, which inlined plugin function bodies
    produce (the WindowAttention bias cast); folding them first sidesteps it and changes no value."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    casts = [n for n in model.graph.node if n.op_type == "Cast" and n.input[0] in inits]
    if not casts:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for node in [n for n in model.graph.node if n.op_type == "Cast" and n.input[0] in inits]:
        to = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "to")
        value = numpy_helper.to_array(inits[node.input[0]]).astype(onnx.helper.tensor_dtype_to_np_dtype(to))
        model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        model.graph.node.remove(node)
    return model


def candidates_for(plan, proto: onnx.ModelProto, inputs: list[np.ndarray], ranges: dict,
                   options: QuantOptions) -> list[Candidate]:
    """The candidates ``plan`` (:class:`edgekit.quant.plan.Int8Plan`) offers for ``proto``, preferred first."""
    return plan.recipes(proto, inputs, ranges, options)
