"""A stand-in for TensorRT's compiled module, and TensorRT's builder calls to a Python AOT plugin, in Python.

``tensorrt.plugin`` (real source, ``tests/tensorrt_bindings.py``) imports the compiled module ``tensorrt``
for base classes, enums and a few value types. ``compiled_module(version)`` is that module with exactly the
names the plugin package uses, nothing that answers to any name: a new dependency of the plugin source
fails loudly here instead of passing silently. ``STAND_IN_NAMES`` are checked against the real compiled
module's string table (tests/plugins/test_tensorrt_plugin_source.py), per release.

``build_plugin_layer`` then does what TensorRT does to a plugin node of an ONNX model, in the order it does
it: the ONNX parser finds the creator by op_type + plugin_namespace, copies every node attribute named like
a registered field into a field collection (in the creator's field order; FLOAT as float32, INT as int32,
STRING with a trailing NUL, as onnx-tensorrt's ``loadFields`` does) and creates the plugin for AOT
(``aot=1``); the
builder asks output types and symbolic shapes, the supported type/format combinations, configures the one
it picked, sets the tactic and calls ``get_launch_params`` and ``get_kernel``. Shapes are symbolic
(``Expr``), so the launch parameters can be evaluated for any batch in the profile afterwards.
"""
from __future__ import annotations

import enum
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


# ---------------------------------------------------------------- value types of the compiled module

class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


class TensorFormat(enum.Enum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8
    DLA_LINEAR = 9
    DLA_HWC4 = 10
    HWC16 = 11
    DHWC = 12


PluginFieldType = enum.Enum("PluginFieldType", "FLOAT16 FLOAT32 FLOAT64 INT8 INT16 INT32 CHAR DIMS UNKNOWN BF16 INT64 "
                                               "FP8 INT4 FP4")
DimensionOperation = enum.Enum("DimensionOperation", "SUM PROD MAX MIN SUB EQUAL LESS FLOOR_DIV CEIL_DIV")
TensorRTPhase = enum.Enum("TensorRTPhase", "BUILD RUNTIME")
QuickPluginCreationRequest = enum.Enum("QuickPluginCreationRequest",
                                       "UNKNOWN PREFER_JIT PREFER_AOT STRICT_JIT STRICT_AOT")
PluginArgType = enum.Enum("PluginArgType", "INT")
PluginArgDataType = enum.Enum("PluginArgDataType", "INT8 INT16 INT32")


class Dims(list):
    """``trt.Dims``: a mutable sequence of ints (-1: dynamic)."""

    MAX_DIMS = 8

    def __init__(self, shape=()):
        super().__init__([0] * shape if isinstance(shape, int) else [int(d) for d in shape])


class DimsExprs(list):
    def __init__(self, n: int):
        super().__init__([None] * n)


class PluginField:
    """``trt.PluginField``: ``data`` becomes a numpy array, as the bindings convert it."""

    def __init__(self, name: str, data=None, type=PluginFieldType.UNKNOWN):  # noqa: A002 (TensorRT's name)
        self.name, self.type = name, type
        if isinstance(data, (bytes, bytearray)):
            data = np.frombuffer(bytes(data), dtype=np.int8)
        self.data = np.asarray(data) if data is not None else np.array([])


class PluginFieldCollection(list):
    pass


@dataclass
class PluginTensorDesc:
    dims: Dims = field(default_factory=Dims)
    type: DataType = DataType.FLOAT
    format: TensorFormat = TensorFormat.LINEAR
    scale: float = 1.0


@dataclass
class DynamicPluginTensorDesc:
    desc: PluginTensorDesc
    min: Dims
    opt: Dims
    max: Dims


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2):
        self.messages: list[tuple[int, str]] = []

    def log(self, severity, msg: str) -> None:
        self.messages.append((severity, msg))


class _Interface:
    """Base of the compiled interfaces the plugin classes derive from (``trt.IPluginV3`` ...)."""

    def __init__(self, *args, **kwargs):
        pass


class _Registry:
    def __init__(self):
        self.creators: dict[tuple[str, str, str], object] = {}

    def register_creator(self, creator, namespace: str) -> bool:
        self.creators[(creator.name, creator.plugin_version, namespace)] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str):
        return self.creators.get((name, version, namespace))


# ---------------------------------------------------------------- symbolic dimensions

class IDimensionExpr:
    """Base class the plugin source checks ``isinstance`` against."""


class Expr(IDimensionExpr):
    """A dimension expression over named symbols (dynamic dims): ``evaluate(batch=8)`` gives its value."""

    def __init__(self, fn: Callable[[dict], int], symbols: frozenset = frozenset(), text: str = "?"):
        self.fn, self.symbols, self.text = fn, symbols, text

    @staticmethod
    def of(dim) -> Expr:
        if isinstance(dim, str):
            return Expr(lambda env, d=dim: int(env[d]), frozenset([dim]), dim)
        return Expr(lambda env, v=int(dim): v, frozenset(), str(int(dim)))

    def is_constant(self) -> bool:
        return not self.symbols

    def get_constant_value(self) -> int:
        if self.symbols:
            raise RuntimeError(f"{self.text} is not a build-time constant")
        return self.fn({})

    def evaluate(self, **env: int) -> int:
        return self.fn(env)

    def __repr__(self):
        return f"Expr({self.text})"


_OPERATIONS = {
    "SUM": (lambda a, b: a + b, "+"), "SUB": (lambda a, b: a - b, "-"), "PROD": (lambda a, b: a * b, "*"),
    "FLOOR_DIV": (lambda a, b: a // b, "//"), "CEIL_DIV": (lambda a, b: -(-a // b), "cdiv"),
    "MAX": (max, "max"), "MIN": (min, "min"), "EQUAL": (lambda a, b: int(a == b), "=="),
    "LESS": (lambda a, b: int(a < b), "<"),
}


class ExprBuilder:
    """``trt.IExprBuilder``: constants and operations on expressions, as the builder's shape context has them."""

    def constant(self, value: int) -> Expr:
        return Expr.of(int(value))

    def operation(self, op: DimensionOperation, a: Expr, b: Expr) -> Expr:
        fn, sign = _OPERATIONS[op.name]
        return Expr(lambda env: fn(a.fn(env), b.fn(env)), a.symbols | b.symbols, f"({a.text} {sign} {b.text})")


# ---------------------------------------------------------------- the module

# Names the plugin package reads from the compiled module (10.9 and later; all present in 10.13 and 11.4).
_AOT_ONLY = ("QuickPluginCreationRequest", "IPluginV3QuickAOTBuild", "ISymExpr", "PluginArgType", "PluginArgDataType")
STAND_IN_NAMES = (
    "DataType", "TensorFormat", "PluginFieldType", "DimensionOperation", "TensorRTPhase", "Dims", "DimsExprs",
    "PluginField", "PluginFieldCollection", "PluginTensorDesc", "DynamicPluginTensorDesc", "Logger",
    "IDimensionExpr", "IExprBuilder", "ITensor", "IPluginV3", "IPluginV3QuickCore", "IPluginV3QuickBuild",
    "IPluginV3QuickRuntime", "IPluginCreatorV3Quick", "get_plugin_registry", "Builder", "OnnxParser",
    "NetworkDefinitionCreationFlag", "float32", "float16", "int32", "MAX_DIMS", *_AOT_ONLY,
)


class _Unbuildable:
    """The builder and parser classes: present (the probe looks for them), never built in these tests."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("the stand-in TensorRT has no builder or parser")


def compiled_module(version: str, *, aot: bool = True, quick_plugins: bool = True,
                    package_dir: Path | None = None) -> types.ModuleType:
    """A fresh stand-in ``tensorrt`` of ``version`` (its own plugin registry).

    aot=False: no ahead-of-time plugin API (TensorRT 10.7); quick_plugins=False: no Python plugin
    interfaces at all (TensorRT 10.3, JetPack 6). ``package_dir``: a folder holding ``plugin/``, from which
    ``import tensorrt.plugin`` then imports it as Python would; else ``load_plugin_package`` does.
    """
    trt = types.ModuleType("tensorrt")
    trt.__path__ = [str(package_dir)] if package_dir else []  # a package, so tensorrt.plugin can live under it
    trt.__version__ = version
    registry = _Registry()
    values = dict(
        DataType=DataType, TensorFormat=TensorFormat, PluginFieldType=PluginFieldType,
        DimensionOperation=DimensionOperation, TensorRTPhase=TensorRTPhase, Dims=Dims, DimsExprs=DimsExprs,
        PluginField=PluginField, PluginFieldCollection=PluginFieldCollection, PluginTensorDesc=PluginTensorDesc,
        DynamicPluginTensorDesc=DynamicPluginTensorDesc, Logger=Logger, IDimensionExpr=IDimensionExpr,
        IExprBuilder=ExprBuilder, get_plugin_registry=lambda: registry,
        float32=DataType.FLOAT, float16=DataType.HALF, int32=DataType.INT32,
        Builder=type("Builder", (_Unbuildable,), {}), OnnxParser=type("OnnxParser", (_Unbuildable,), {}),
        NetworkDefinitionCreationFlag=enum.Enum("NetworkDefinitionCreationFlag", ["STRONGLY_TYPED", *(
            ["PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"] if quick_plugins and aot else [])], start=0),
    )
    interfaces = ["ITensor"]
    if quick_plugins:
        interfaces += ["IPluginV3", "IPluginV3QuickCore", "IPluginV3QuickBuild", "IPluginV3QuickRuntime",
                       "IPluginCreatorV3Quick"]
    if quick_plugins and aot:
        interfaces += ["IPluginV3QuickAOTBuild", "ISymExpr"]
        values.update(QuickPluginCreationRequest=QuickPluginCreationRequest, PluginArgType=PluginArgType,
                      PluginArgDataType=PluginArgDataType)
    values.update({name: type(name, (_Interface,), {}) for name in interfaces})
    for name, value in values.items():
        setattr(trt, name, value)
    return trt


def load_plugin_package(trt: types.ModuleType, plugin_dir: Path,
                        set_module: Callable[[str, types.ModuleType], None] = sys.modules.__setitem__
                        ) -> types.ModuleType:
    """Import ``plugin_dir`` as ``tensorrt.plugin`` over the stand-in ``trt``, putting both in sys.modules with
    ``set_module`` (a monkeypatch's, in tests). The package imports its submodules itself."""
    init = Path(plugin_dir) / "__init__.py"
    set_module("tensorrt", trt)
    spec = importlib.util.spec_from_file_location("tensorrt.plugin", init, submodule_search_locations=[str(init.parent)])
    plugin = importlib.util.module_from_spec(spec)
    set_module("tensorrt.plugin", plugin)
    trt.plugin = plugin
    spec.loader.exec_module(plugin)
    return plugin


# ---------------------------------------------------------------- TensorRT building one plugin layer

class _LaunchParams:
    """The C++ ``KernelLaunchParams`` get_launch_params fills (each member a ``SymExprImpl``)."""

    grid_x = grid_y = grid_z = block_x = block_y = block_z = shared_mem = None


class _SymExprSetter:
    def __init__(self):
        self.nbSymExprs = 0
        self.exprs: dict[int, object] = {}

    def __setitem__(self, index: int, expr) -> None:
        self.exprs[index] = expr


def parser_fields(trt, creator, node_attributes: dict) -> PluginFieldCollection:
    """The fields TensorRT's ONNX parser hands ``create_plugin`` (onnx-tensorrt's ``loadFields``): for each
    field the creator registered, in its order, the node attribute of that name, typed by the attribute's ONNX
    type: FLOAT -> FLOAT32, INT -> INT32, STRING -> CHAR with a trailing NUL. Other attributes are not copied.
    ``node_attributes`` hold Python values as ``onnx.helper.make_attribute`` would type them."""
    fields = PluginFieldCollection()
    for declared in creator.field_names:
        if declared.name not in node_attributes:
            continue
        value = node_attributes[declared.name]
        if isinstance(value, str):
            fields.append(trt.PluginField(declared.name, value.encode() + b"\0", trt.PluginFieldType.CHAR))
        elif isinstance(value, float):
            fields.append(trt.PluginField(declared.name, np.array([value], np.float32), trt.PluginFieldType.FLOAT32))
        elif isinstance(value, int):
            fields.append(trt.PluginField(declared.name, np.array([value], np.int32), trt.PluginFieldType.INT32))
        else:
            raise TypeError(f"attribute {declared.name}: {type(value).__name__} is not a FLOAT, INT or STRING")
    return fields


@dataclass
class PluginLayerBuild:
    """What TensorRT got from one plugin layer's build, with symbolic values evaluable per profile shape."""

    plugin: object
    output_types: list
    output_shapes: list  # per output: list of Expr
    kernel_name: str
    ptx: bytes
    launch: _LaunchParams
    extra_args: list  # SymExprImpl, in kernel order

    def grid(self, **dims: int) -> tuple[int, int, int]:
        return tuple(getattr(self.launch, f"grid_{a}").expr.evaluate(**dims) for a in "xyz")

    def block(self, **dims: int) -> tuple[int, int, int]:
        return tuple(getattr(self.launch, f"block_{a}").expr.evaluate(**dims) for a in "xyz")

    def shared_mem(self, **dims: int) -> int:
        return self.launch.shared_mem.expr.evaluate(**dims)

    def args(self, **dims: int) -> tuple[int, ...]:
        return tuple(e.expr.evaluate(**dims) for e in self.extra_args)


def build_plugin_layer(trt, op_type: str, namespace: str, node_attributes: dict, input_shapes: list,
                       dtype: DataType, profile: dict[str, tuple[int, int, int]], tactic: int | None = None
                       ) -> PluginLayerBuild:
    """Build one plugin node as TensorRT does. ``input_shapes``: per input, dims as ints or symbol names;
    ``profile``: symbol -> (min, opt, max); every I/O tensor of type ``dtype``, LINEAR."""
    creator = trt.get_plugin_registry().get_creator(op_type, str(node_attributes.get("plugin_version", "1")), namespace)
    if creator is None:
        raise LookupError(f"no plugin creator {namespace}::{op_type} registered")
    request = (trt.QuickPluginCreationRequest.STRICT_AOT if node_attributes.get("aot") == 1
               else trt.QuickPluginCreationRequest.PREFER_AOT)
    plugin = creator.create_plugin(op_type, namespace, parser_fields(trt, creator, node_attributes),
                                   trt.TensorRTPhase.BUILD, request)
    num_inputs = len(input_shapes)
    output_types = plugin.get_output_data_types([dtype] * num_inputs, [len(s) for s in input_shapes])
    builder = trt.IExprBuilder()
    input_exprs = []
    for shape in input_shapes:
        exprs = trt.DimsExprs(len(shape))
        for i, d in enumerate(shape):
            exprs[i] = Expr.of(d)
        input_exprs.append(exprs)
    output_exprs = plugin.get_output_shapes(input_exprs, [], builder)

    def desc(exprs, type_):
        def at(which):
            return trt.Dims([e.evaluate(**{s: profile[s][which] for s in e.symbols}) for e in exprs])

        build_dims = trt.Dims([e.get_constant_value() if e.is_constant() else -1 for e in exprs])
        return trt.DynamicPluginTensorDesc(trt.PluginTensorDesc(build_dims, type_, trt.TensorFormat.LINEAR),
                                           at(0), at(1), at(2))

    in_out = [desc(e, dtype) for e in input_exprs] + [desc(e, t) for e, t in zip(output_exprs, output_types)]
    offered = plugin.get_supported_format_combinations(in_out, num_inputs)
    width = len(in_out)
    combinations = [offered[i:i + width] for i in range(0, len(offered), width)]
    if not any(all(d.type == dtype and d.format == trt.TensorFormat.LINEAR for d in c) for c in combinations):
        raise ValueError(f"the plugin offers no all-{dtype.name} LINEAR combination")
    plugin.configure_plugin(in_out[:num_inputs], in_out[num_inputs:])
    tactics = plugin.get_valid_tactics()
    plugin.set_tactic(tactic if tactic is not None else (tactics[0] if tactics else 0))
    launch, setter = _LaunchParams(), _SymExprSetter()
    plugin.get_launch_params(input_exprs, in_out, num_inputs, launch, setter, builder)
    name, ptx = plugin.get_kernel([d.desc for d in in_out[:num_inputs]], [d.desc for d in in_out[num_inputs:]])
    if setter.nbSymExprs != len(setter.exprs):
        raise ValueError(f"{setter.nbSymExprs} extra args announced, {len(setter.exprs)} set")
    return PluginLayerBuild(plugin, output_types, [list(e) for e in output_exprs], name, ptx, launch,
                            [setter.exprs[i] for i in range(setter.nbSymExprs)])
