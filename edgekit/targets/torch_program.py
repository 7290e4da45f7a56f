"""What the targets that lower a ``torch.export`` program share (ExecuTorch, LiteRT): the model as a function of
one float tensor returning a tuple, its capture, the bundle's I/O description, and what each graph node is (its
PyTorch module, its FLOPs, an ONNX-style name that ``--keep-fp`` patterns and the profiler's module mapping read).

ONNX-style names: ``/stages.1/blocks.0/attn/MatMul`` for an ``aten.matmul`` in module ``stages.1.blocks.0.attn``,
as the ONNX exporter names the nodes of the other targets, so one ``--keep-fp '*/attn/*'`` pattern, one
``op:Softmax`` and one profile mapping (:mod:`edgekit.profiling.layers`) serve every target.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch
from torch import nn

from edgekit.config import Precision
from edgekit.engines.base import first_line, quiet_native
from edgekit.errors import EdgekitFailure
from edgekit.targets.base import TargetBackend

INPUT = "input"

# aten op (its overload packet name) -> the ONNX op type the exporter writes for it
ONNX_OP = {"conv2d": "Conv", "convolution": "Conv", "_convolution": "Conv", "linear": "Gemm", "addmm": "Gemm",
           "mm": "MatMul", "matmul": "MatMul", "bmm": "MatMul", "baddbmm": "MatMul",
           "scaled_dot_product_attention": "Attention", "_softmax": "Softmax", "softmax": "Softmax",
           "_log_softmax": "LogSoftmax", "layer_norm": "LayerNormalization",
           "native_layer_norm": "LayerNormalization", "group_norm": "GroupNormalization",
           "native_group_norm": "GroupNormalization", "batch_norm": "BatchNormalization",
           "_native_batch_norm_legit_no_training": "BatchNormalization", "gelu": "Gelu", "hardswish": "HardSwish",
           "hardsigmoid": "HardSigmoid", "relu": "Relu", "relu6": "Clip", "hardtanh": "Clip", "sigmoid": "Sigmoid",
           "silu": "Swish", "tanh": "Tanh", "erf": "Erf", "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div",
           "mean": "ReduceMean", "sum": "ReduceSum", "avg_pool2d": "AveragePool", "adaptive_avg_pool2d":
           "GlobalAveragePool", "max_pool2d": "MaxPool", "max_pool2d_with_indices": "MaxPool", "cat": "Concat",
           "upsample_bilinear2d": "Resize", "upsample_nearest2d": "Resize", "_upsample_bilinear2d_aa": "Resize",
           "permute": "Transpose", "permute_copy": "Transpose", "transpose": "Transpose", "view": "Reshape",
           "view_copy": "Reshape", "reshape": "Reshape", "flatten": "Flatten", "pad": "Pad",
           "constant_pad_nd": "Pad", "roll": "Roll", "clamp": "Clip", "pow": "Pow", "sqrt": "Sqrt",
           "rsqrt": "Rsqrt", "exp": "Exp", "slice": "Slice", "slice_copy": "Slice", "select": "Gather",
           "index": "Gather", "expand": "Expand", "expand_copy": "Expand", "split": "Split",
           "split_with_sizes": "Split", "chunk": "Split", "unbind": "Split"}


class Pt2eBackend(TargetBackend):
    """What ExecuTorch and LiteRT share as targets: built from the prepared torch model (``build_torch``), fp32,
    fp16 and int8, int8 through PT2E (:mod:`edgekit.quant.pt2e`) from the calibration set the pipeline hands in."""

    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    needs_torch = True
    pt2e = True

    @property
    def int8(self):
        """`edgekit quantize --sensitivity` ranks blocks with edgekit's QDQ in ONNX Runtime; the int8 bundle itself
        is quantized by PT2E in build_torch."""
        from edgekit.quant.plan import Int8Plan, Scoring
        from edgekit.quant.recipes import generic_recipes

        return Int8Plan(Scoring.ONNXRUNTIME, "ONNX Runtime", generic_recipes)


class Flat(nn.Module):
    """The model as one float tensor in, a tuple of tensors out (a dict's values in order, a tuple as it is)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        if isinstance(out, dict):
            out = tuple(out.values())
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class FloatIsland(nn.Module):
    """A module of an fp16 program kept in float32: its inputs cast up, its outputs back to fp16."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.float()

    def forward(self, *args, **kwargs):
        def cast(dtype):
            return lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t

        args, kwargs = torch.utils._pytree.tree_map(cast(torch.float32), (args, kwargs))
        return torch.utils._pytree.tree_map(cast(torch.float16), self.module(*args, **kwargs))


# fp16 islands: modules whose sums, variances or normalisers overflow fp16's 65504 or lose its 11-bit mantissa
# (the FLOAT16 rules of edgekit.quant.islands, at module granularity: attention modules hold the softmax and the
# linear-attention normaliser)
_FP16_ISLANDS = {"layernorm": (nn.LayerNorm, nn.GroupNorm)}


def fp16_island_reason(module: nn.Module) -> str | None:
    if isinstance(module, _FP16_ISLANDS["layernorm"]) or "Norm" in type(module).__name__ and \
            "Batch" not in type(module).__name__ and not list(module.children()):
        return "layernorm"
    name = type(module).__name__
    if "Attention" in name or name in ("LiteMLA", "MultiheadAttention"):
        return "softmax / linear-attention normaliser"
    return None


class Half(nn.Module):
    """The model computing in fp16 behind a float32 input and float32 outputs, its fp16 islands in float32
    (``islands``: module path -> reason)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.islands: dict[str, str] = {}
        self.model = model.half()
        self._keep_float(self.model, "")

    def _keep_float(self, parent: nn.Module, prefix: str) -> None:
        for name, child in list(parent.named_children()):
            path = f"{prefix}{name}".removeprefix("model.")  # the path in the user's model, not in Flat
            reason = fp16_island_reason(child)
            if reason:
                setattr(parent, name, FloatIsland(child))
                self.islands[path] = reason
            else:
                self._keep_float(child, path + ".")

    def forward(self, x):
        return tuple(o.float() for o in self.model(x.half()))


def contiguous_constants(model: nn.Module) -> list[str]:
    """Make every parameter and buffer of ``model`` contiguous, in place; returns the names that were not.

    ExecuTorch 1.5 and litert-torch 0.10 both read a constant laid out in another order as if it were
    contiguous. Zoo Swin's deploy-mode attention bias, a (1, heads, 49, 49) view with strides (3, 1, 147, 3),
    made ExecuTorch's window attention 1.3% off (max abs error / range), and the whole model failed the fp32 gate
    on both targets (ExecuTorch: cosine 0.999987; LiteRT: max abs error / range 2.3e-3). With the bias made
    contiguous, both match PyTorch to cosine 1 - 1e-12."""
    changed = []
    for owner_name, owner in model.named_modules():
        for kind in ("_parameters", "_buffers"):
            for name, t in list(getattr(owner, kind).items()):
                if t is not None and not t.is_contiguous():
                    with torch.no_grad():
                        fixed = t.contiguous()
                    getattr(owner, kind)[name] = nn.Parameter(fixed, t.requires_grad) if kind == "_parameters" \
                        else fixed
                    changed.append(f"{owner_name}.{name}" if owner_name else name)
    return changed


def example_input(spec) -> torch.Tensor:
    """A seeded input of the model's shape: torch.export only reads its shape and dtype."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(*spec.input_shape, generator=generator)


@contextlib.contextmanager
def quiet():
    """torch.export, ExecuTorch and litert-torch warn and log on every conversion (deprecations, pytree
    notices, absl); keep them off the user's terminal. Errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.utils._pytree", "executorch", "torchao", "absl",
                                              "litert_torch", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_native():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def envelope_dims(envelope) -> tuple | None:
    """``torch.export``'s dynamic_shapes for a shape envelope's height and width (each a multiple of its step,
    between its MIN and MAX); None for a fixed size."""
    if envelope is None or not envelope.dynamic_hw:
        return None
    step = envelope.step
    dims = {}
    for axis, name in ((2, "height"), (3, "width")):
        dim = torch.export.Dim(name if step == 1 else f"{name}_steps", min=envelope.min[axis] // step,
                               max=envelope.max[axis] // step)
        dims[axis] = dim if step == 1 else dim * step
    return (dims,)


def capture(model: nn.Module, example: torch.Tensor, what: str, dynamic_shapes: tuple | None = None):
    """``torch.export`` of ``model`` (a :class:`Flat`) on ``example`` (with ``dynamic_shapes``: a symbolic height and
    width, :func:`envelope_dims`); a model it cannot capture is one line."""
    try:
        with quiet(), torch.no_grad():
            return torch.export.export(model, (example,), strict=False, dynamic_shapes=dynamic_shapes)
    except Exception as e:  # noqa: BLE001 - torch.export raises many types; the first line says what broke
        line = first_line(e, 300)
        raise EdgekitFailure(f"torch.export cannot capture the model for {what}: {line}; replace the module that "
                             f"uses it or choose another target") from None


def describe_io(model: nn.Module, example: torch.Tensor, spec, dynamic_hw: bool = False
                ) -> tuple[list[dict], list[dict]]:
    """The bundle's inputs and outputs: one float NCHW input named ``input`` (the bundle's preprocessing applied),
    the outputs named and shaped as PyTorch gives them on ``example`` (``dynamic_hw``: the height and width of the
    input and of every 4-D output symbolic, for a shape envelope)."""
    with torch.no_grad():
        outs = model(example)
    names = spec.output_names
    if len(names) != len(outs):
        names = tuple(f"output{i}" for i in range(len(outs))) if len(outs) > 1 else ("output",)
    inputs = [{"name": INPUT, "shape": list(example.shape), "dtype": "float32", "layout": "NCHW"}]
    outputs = [{"name": n, "shape": list(o.shape), "dtype": str(o.dtype).replace("torch.", ""),
                "layout": {4: "NCHW", 3: "NLC", 2: "NC"}.get(o.dim(), "")} for n, o in zip(names, outs)]
    if dynamic_hw:
        inputs[0]["shape"][2:] = ["height", "width"]
        for out in outputs:
            if len(out["shape"]) == 4:
                out["shape"][2:] = [f"{out['name']}_height", f"{out['name']}_width"]
    return inputs, outputs


def _aten(target):
    """The aten overload behind ExecuTorch's EdgeOpOverload (``_op``); an aten overload itself as it is."""
    return target._op if type(target).__name__ == "EdgeOpOverload" else target


def aten_name(node) -> str:
    """The aten op of an FX node without namespace and overload: ``aten.conv2d.default`` -> ``conv2d``; edge
    dialect ops (``aten.convolution.default`` wrapped by ExecuTorch) likewise."""
    target = _aten(node.target)
    name = getattr(target, "__name__", str(target))
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        name = packet.__name__
    return name.split(".")[0]


def module_path(node) -> str:
    """The dotted path of the innermost PyTorch module an FX node was traced in ('' for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return user_path(path.removeprefix("L['self'].")) if isinstance(path, str) else ""


def user_path(path: str) -> str:
    """A module path in :class:`Flat` -> the same module's path in the user's model (Flat holds it as ``model``)."""
    return "" if path == "model" else path.removeprefix("model.")


def module_units(path: str) -> list[str]:
    """'stages.1.blocks.0.attn' -> ['stages.1', 'blocks.0', 'attn'] (an index stays with its container), the
    units of :func:`edgekit.profiling.layers.module_segments`."""
    units: list[str] = []
    for part in (p for p in path.split(".") if p):
        if part.isdigit() and units:
            units[-1] = f"{units[-1]}.{part}"
        else:
            units.append(part)
    return units


def onnx_style_name(node) -> str:
    """``/stages.1/blocks.0/attn/MatMul``: the node's module units and its op as the ONNX exporter names it."""
    op = aten_name(node)
    units = module_units(module_path(node))
    return "/" + "/".join([*units, ONNX_OP.get(op, op)])


def node_flops(node) -> int:
    """FLOPs of one aten call (PyTorch's own formulas: convolutions and matmuls), 0 for the rest."""
    from torch.utils.flop_counter import flop_registry

    target = _aten(node.target)
    packet = getattr(target, "_overloadpacket", None)
    formula = flop_registry.get(packet) if packet is not None else None
    if formula is None and aten_name(node) == "linear":  # not in PyTorch's registry: 2 x in_features per output
        out, weight = node.meta.get("val"), node.args[1].meta.get("val") if len(node.args) > 1 else None
        return int(2 * out.numel() * weight.shape[-1]) if out is not None and weight is not None else 0
    if formula is None:
        return 0

    def val(a):
        return a.meta.get("val") if isinstance(a, torch.fx.Node) else a

    args = torch.utils._pytree.tree_map(val, node.args)
    kwargs = torch.utils._pytree.tree_map(val, dict(node.kwargs))
    try:
        return int(formula(*args, out_val=node.meta.get("val"), **kwargs))
    except Exception:  # noqa: BLE001 - an op whose formula wants other arguments counts as none
        return 0


def graph_flops(graph_module) -> int:
    return sum(node_flops(n) for n in graph_module.graph.nodes if n.op == "call_function")
