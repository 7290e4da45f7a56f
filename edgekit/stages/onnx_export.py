"""PyTorch -> ONNX: deploy preparation, export with a fallback exporter, simplification, checks.

The TorchScript-based exporter is tried first: it honours the requested opset and emits edgekit's
plugin ops from their ``symbolic`` functions. If it fails, the dynamo exporter is tried, and the
opset it actually wrote is checked (it writes 18 when asked for 17). The IR version is lowered to
the minimum the opsets need (onnx 1.23 writes IR 14 by default; ONNX Runtime 1.31 reads <= 13).
"""
from __future__ import annotations

import io
import re
import time
import warnings
from dataclasses import dataclass, field

import onnx
import torch
from torch import nn

from edgekit.errors import EdgekitFailure

INPUT_NAME = "input"
OUTPUT_NAME = "output"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the dynamo exporter colours its messages for a terminal


@dataclass
class ExportResult:
    model: onnx.ModelProto
    exporter: str
    opset: int
    seconds: float
    simplifier: str = ""
    notes: list[str] = field(default_factory=list)


def prepare_for_deploy(model: nn.Module) -> nn.Module:
    """Eval mode and structural re-parameterization (BN merging, RepMixer, MobileOne branches): one walk
    that calls each block's ``reparameterize`` / ``fuse`` / ``switch_to_deploy`` exactly once, for the zoo,
    timm and any other model (see :mod:`edgekit.models._reparam`). Returns the deploy-mode model."""
    from edgekit.models import reparameterize_model

    return reparameterize_model(model)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], opset: int = 17, dynamic_batch: bool = False,
                simplify: bool = True, output_names: tuple[str, ...] = (OUTPUT_NAME,),
                dynamic_hw: bool = False) -> ExportResult:
    """``model`` as ONNX, its input named ``input`` and its outputs ``output_names`` (one per tensor it returns,
    in order: a backbone's ``stage1``, ``stage2``...). ``dynamic_hw``: the input's height and width (and every
    4-D output's) are symbolic, for a shape envelope (:mod:`edgekit.shapes`)."""
    start = time.perf_counter()
    x = torch.randn(*input_shape)
    notes: list[str] = []
    errors: list[str] = []
    proto = None
    exporter = ""
    for name, fn in (("torchscript", _export_torchscript), ("dynamo", _export_dynamo)):
        try:
            proto = fn(model, x, opset, _Dynamic(dynamic_batch, dynamic_hw), tuple(output_names))
            exporter = name
            break
        except Exception as e:  # exporters raise many kinds; the next one may succeed
            text = _ANSI.sub("", str(e)).strip()
            msg = text.splitlines()[0] if text else e.__class__.__name__
            errors.append(f"{name} exporter: {msg[:300]}")
            notes.append(f"{name} exporter failed ({msg[:200]}); falling back")
    if proto is None:
        raise EdgekitFailure("ONNX export failed with every exporter: " + " | ".join(errors))
    got = _default_opset(proto)
    if got != opset:
        try:
            from onnx import version_converter

            converted = version_converter.convert_version(proto, opset)
            onnx.checker.check_model(converted)  # the converter can write invalid attributes
            proto = converted
            notes.append(f"{exporter} exporter wrote opset {got}; converted to {opset}")
        except Exception as e:  # the converter lacks adapters for some ops
            notes.append(f"{exporter} exporter wrote opset {got} instead of {opset} and it could not be converted ({e.__class__.__name__}); keeping {got}")
    _lower_ir_version(proto)
    simplifier = ""
    if simplify:
        proto, simplifier = _simplify(proto, notes)
        _lower_ir_version(proto)
    try:
        onnx.checker.check_model(proto, full_check=not _has_custom_ops(proto))
        proto = onnx.shape_inference.infer_shapes(proto)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise EdgekitFailure(f"exported ONNX fails the checker: {str(e).splitlines()[0]}") from None
    got = tuple(o.name for o in proto.graph.output)
    if got != tuple(output_names):
        raise EdgekitFailure(f"the exported ONNX has outputs {', '.join(got)}, expected {', '.join(output_names)}: "
                             f"the model's outputs changed while exporting")
    return ExportResult(proto, exporter, _default_opset(proto), time.perf_counter() - start, simplifier, notes)


@dataclass
class _Dynamic:
    batch: bool = False
    hw: bool = False
    out_shapes: dict = field(default_factory=dict)  # filled by axes(): each output's shape at the example input

    def axes(self, model: nn.Module, x: torch.Tensor, output_names: tuple[str, ...]) -> dict | None:
        """torch.onnx's dynamic_axes: the batch of every tensor, the height and width of the input and of every
        4-D output (each output's own names: a segmenter's logits are smaller than its input)."""
        if not (self.batch or self.hw):
            return None
        axes = {n: ({0: "batch"} if self.batch else {}) for n in (INPUT_NAME, *output_names)}
        if self.hw:
            axes[INPUT_NAME].update({2: "height", 3: "width"})
            with torch.no_grad():
                outs = model(x)
            outs = outs if isinstance(outs, (list, tuple)) else (outs,)
            for name, out in zip(output_names, outs):
                self.out_shapes[name] = tuple(int(d) for d in out.shape)
                if out.ndim == 4:
                    axes[name].update({2: f"{name}_height", 3: f"{name}_width"})
        return axes

    def pin(self, proto: onnx.ModelProto, axes: dict | None) -> None:
        """Every output dimension the export left symbolic but that is not dynamic (the channels of a map whose
        height and width are) set to its value: runtimes and the manifest read a fixed count."""
        for value in proto.graph.output:
            shape, dynamic = self.out_shapes.get(value.name), (axes or {}).get(value.name, {})
            if shape is None or len(value.type.tensor_type.shape.dim) != len(shape):
                continue
            for i, dim in enumerate(value.type.tensor_type.shape.dim):
                if i not in dynamic and not dim.HasField("dim_value"):
                    dim.Clear()
                    dim.dim_value = shape[i]


def _export_torchscript(model: nn.Module, x: torch.Tensor, opset: int, dynamic: _Dynamic,
                        output_names: tuple[str, ...]) -> onnx.ModelProto:
    buf = io.BytesIO()
    dynamic_axes = dynamic.axes(model, x, output_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=list(output_names), dynamic_axes=dynamic_axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    dynamic.pin(proto, dynamic_axes)
    return proto


def _export_dynamo(model: nn.Module, x: torch.Tensor, opset: int, dynamic: _Dynamic,
                   output_names: tuple[str, ...]) -> onnx.ModelProto:
    dims = {0: torch.export.Dim("batch")} if dynamic.batch else {}
    if dynamic.hw:
        dims.update({2: torch.export.Dim("height"), 3: torch.export.Dim("width")})
    dynamic_shapes = ({"x": dims},) if dims else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                                 output_names=list(output_names), dynamic_shapes=dynamic_shapes, optimize=True,
                                 verbose=False)
    return prog.model_proto


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _has_custom_ops(proto: onnx.ModelProto) -> bool:
    return any(o.domain not in ("", "ai.onnx", "ai.onnx.ml") for o in proto.opset_import)


def _lower_ir_version(proto: onnx.ModelProto) -> None:
    opsets = [o for o in proto.opset_import if o.domain in ("", "ai.onnx", "ai.onnx.ml")]
    proto.ir_version = max(7, onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True))


def _simplify(proto: onnx.ModelProto, notes: list[str]) -> tuple[onnx.ModelProto, str]:
    try:
        import onnxslim
    except ImportError:
        notes.append("onnxslim not installed; model not simplified")
        return proto, ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(proto)
        return slim, f"onnxslim {onnxslim.__version__}"
    except Exception as e:  # the simplifier is best-effort; the unsimplified model is still valid
        notes.append(f"onnxslim failed ({e.__class__.__name__}: {str(e)[:120]}); model not simplified")
        return proto, ""
