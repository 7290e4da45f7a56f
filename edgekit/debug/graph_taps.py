"""Graphs with tensors exposed as extra outputs ("taps"), run on ONNX Runtime or OpenVINO: what the divergence
locator (:mod:`.locate`) and its signatures (:mod:`.signatures`) read."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgekit.errors import EdgekitFailure

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def with_outputs(proto: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    """A copy of ``proto`` whose graph also outputs ``tensors`` (as float32: a Cast where they are not)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    types = tensor_types(model)
    have = {o.name for o in model.graph.output}
    for name in tensors:
        if name in have:
            continue
        out = name
        if types.get(name, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            out = f"{name}/as_fp32"
            model.graph.node.append(onnx.helper.make_node("Cast", [name], [out], name=f"{name}/tap_cast",
                                                          to=onnx.TensorProto.FLOAT))
        model.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    return model


def run_taps(graph, tensors: list[str], runtime: str, options: dict,
             inputs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Run ``graph`` with ``tensors`` exposed on ``runtime``; per input, tensor name -> float32 value.
    ``graph``: an ONNX ModelProto, or the path of an OpenVINO IR ``.xml`` (a bundle's own, int8 included: the
    IR keeps the ONNX tensor names it was converted from)."""
    from edgekit.engines import EngineError, open_engine

    if isinstance(graph, (str, Path)):
        artifact, names = _ir_with_outputs(Path(graph), tensors)
        opts = {k: v for k, v in options.items() if k in ("inference_precision", "device")}
    else:
        from edgekit.plugins_bridge import inline_plugin_functions

        model = with_outputs(inline_plugin_functions(graph), tensors)
        rename = {f"{t}/as_fp32": t for t in tensors}
        names = [[rename.get(o.name, o.name)] for o in model.graph.output]
        if runtime == "openvino":
            artifact = to_openvino(model, "the graph with its taps")
            # OpenVINO orders and names its outputs itself: each is matched by the names its tensor carries
            # (several, where OpenVINO merged tensors that are the same value)
            wanted = set(rename) | {n for (n,) in names}
            names = [[rename.get(m, m) for m in _carried(wanted, o)] for o in artifact.outputs]
            opts = {k: v for k, v in options.items() if k in ("inference_precision", "device")}
        else:
            artifact, opts = model.SerializeToString(), {"graph_optimization_level": options.get(
                "graph_optimization_level", "ORT_ENABLE_ALL")}
    try:
        engine = open_engine(runtime, artifact, opts, threads=None)
    except EngineError as e:
        raise EdgekitFailure(f"the divergence locator cannot open the graph with its taps on {runtime}: "
                             f"{e.detail[:200]}") from None
    results = []
    try:
        for x in inputs:
            outs = engine.infer({engine.input_names[0]: x})  # every output, in the graph's order
            results.append({n: np.asarray(v, np.float32) for carried, v in zip(names, outs) for n in carried})
    finally:
        engine.close()
    return results


def graph_tensors(graph) -> set[str]:
    """The float tensors a tap can expose in ``graph`` (an ONNX ModelProto or an OpenVINO IR path)."""
    if isinstance(graph, (str, Path)):
        import openvino as ov

        model = ov.Core().read_model(str(graph))
        return {name for op in model.get_ops() for out in op.outputs() for name in out.get_names()
                if out.get_element_type().is_real()}
    return {name for name, kind in tensor_types(graph).items() if kind in FLOAT_TYPES}


def _ir_with_outputs(path: Path, tensors: list[str]):
    """(The IR at ``path`` with ``tensors`` added as outputs, the name of each of its outputs in order)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    have = {n for out in model.outputs for n in out.get_names()}
    missing = [t for t in tensors if t not in have]
    if missing:
        model.add_outputs(missing)
    wanted = set(tensors)
    return model, [_carried(wanted, out) for out in model.outputs]


def _carried(wanted: set[str], output) -> list[str]:
    """The wanted names an OpenVINO output's tensor carries (its own name when it carries none)."""
    return sorted(wanted & set(output.get_names())) or [output.get_any_name()]


def to_openvino(proto: onnx.ModelProto, what: str):
    """``proto`` as an ``openvino.Model``; ``what`` names it in the one-line error."""
    import openvino as ov

    from edgekit.plugins_bridge import inline_plugin_functions

    with tempfile.TemporaryDirectory() as tmp:  # convert_model reads ONNX from a file
        path = Path(tmp) / "model.onnx"
        onnx.save_model(inline_plugin_functions(proto), str(path))
        try:
            return ov.convert_model(str(path))
        except Exception as e:  # OpConversionFailure and friends
            raise EdgekitFailure(f"OpenVINO cannot convert {what}: {str(e).splitlines()[0][:300]}") from None


def tensor_types(proto: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can tell."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - custom-domain ops stop inference; the graph's own value_info is used
        inferred = proto
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    types.update({i.name: i.data_type for i in g.initializer})
    return types
