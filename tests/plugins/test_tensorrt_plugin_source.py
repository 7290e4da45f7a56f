"""edgekit's TensorRT plugins against TensorRT's own ``tensorrt.plugin`` source (10.13 and 11.4 bindings wheels).

Each test runs per release: the real plugin package over the stand-in compiled core (tests/tensorrt_stand_in.py),
edgekit's ``register()``, then a plugin layer built the way TensorRT's parser and builder call it
(``build_plugin_layer``): fields from the ONNX node's attributes, ``get_launch_params`` calling ``aot_impl`` with
every field in registration order, symbolic shapes evaluated for several profile shapes. Kernels are the PTX the
session compiled for sm_80 / PTX 7.0 (``aot_kernels``); the test checks each ``compile_kernel`` call asks for that.
"""
# No ``from __future__ import annotations``: tensorrt.plugin inspects the annotations of the plugin defined here.
import ast
import importlib
import inspect
from pathlib import Path
from typing import Tuple, Union

import pytest
from edgekit.plugins import tensorrt_aot
from edgekit.plugins.linear_attention import launch_params as la_launch
from edgekit.plugins.linear_attention import trt_plugin as la_plugin
from edgekit.plugins.linear_attention.schema import SCHEMA as LA_SCHEMA
from edgekit.plugins.window_attention import launch_params as wa_launch
from edgekit.plugins.window_attention import trt_plugin as wa_plugin
from edgekit.plugins.window_attention.schema import SCHEMA as WA_SCHEMA

from edgekit import plugins
from tests import tensorrt_stand_in
from tests.tensorrt_stand_in import DataType

ROOT = Path(__file__).resolve().parents[2]
AMPERE_PLUS = tensorrt_aot.kernel_target("ampere+", "9.0")  # what aot_kernels was compiled for
DTYPES = {"HALF": "fp16", "FLOAT": "fp32"}


def precompiled(monkeypatch, module, aot_kernels, folder: str, attribute: float) -> list:
    """Replace ``module.compile_kernel`` by the session's sm_80 kernels; returns the calls it got."""
    calls = []

    def compile_kernel(dtype, seq_len, head_dim, value, target):
        calls.append((dtype, seq_len, head_dim, value, target))
        return aot_kernels[(folder, dtype, seq_len, head_dim, attribute)]

    monkeypatch.setattr(module, "compile_kernel", compile_kernel)
    return calls


# ---------------------------------------------------------------- the bindings and the stand-in


def test_bindings_hold_each_releases_plugin_package(tensorrt_bindings):
    assert sorted(b.major for b in tensorrt_bindings.values()) == [10, 11]
    for b in tensorrt_bindings.values():
        assert {"__init__.py", "_lib.py", "_plugin_class.py", "_tensor.py", "_validate.py"} <= {
            p.name for p in b.plugin_dir.iterdir()}
        assert "def get_launch_params" in (b.plugin_dir / "_plugin_class.py").read_text()


def test_stand_in_names_only_what_the_compiled_module_defines(tensorrt_bindings):
    """Every name the stand-in offers the plugin package, and every enum member it uses, is in the release's
    compiled module (its string table): the stand-in invents no API."""
    trt = tensorrt_stand_in.compiled_module("0")
    wanted = set(tensorrt_stand_in.STAND_IN_NAMES)
    for name in ("DataType", "TensorFormat", "PluginFieldType", "DimensionOperation", "QuickPluginCreationRequest",
                 "TensorRTPhase", "PluginArgType", "PluginArgDataType"):
        wanted |= {m.name for m in getattr(trt, name)}
    for b in tensorrt_bindings.values():
        assert b.undefined(wanted) == [], b.version
    assert not b.defines("engine_host_code_allowed_x")  # the lookup can say no


def _chain(node) -> list[str] | None:
    """``trt.A.B`` -> ["trt", "A", "B"]; ``self.runtime.X`` -> ["runtime", "X"]; None through calls/subscripts."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    names.reverse()
    return names[1:] if names[0] == "self" else names


def _trt_attributes(path: Path, receivers: set[str]) -> set[str]:
    """Names the module reads or sets on TensorRT objects: every attribute of a chain rooted at one of
    ``receivers`` (``trt.BuilderFlag.VERSION_COMPATIBLE``, ``config.set_timing_cache``,
    ``self.runtime.deserialize_cuda_engine``), and the names it asks ``hasattr`` / ``getattr`` about."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain and chain[0] in receivers:
                found.update(chain[1:])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            chain = _chain(node.args[0])
            if chain and chain[0] in receivers:
                found.update([*chain[1:], node.args[1].value])
    return {n for n in found if not n.startswith("__")}


def test_edgekit_uses_only_names_the_compiled_module_defines(tensorrt_bindings):
    """What edgekit's engine build and runners call on TensorRT objects exists in 10.13 and in 11.4
    (``engine_host_code_allowed``, ``set_timing_cache``, ``PREFER_AOT_PYTHON_PLUGINS`` ...)."""
    receivers = {"trt", "config", "builder", "runtime", "network", "parser", "engine", "context", "inspector"}
    used = set()
    for name in ("edgekit/targets/tensorrt/engine.py", "edgekit/engines/tensorrt.py", "edgekit/engines/trt_runtime.py",
                 "edgekit/targets/tensorrt/device.py"):
        used |= _trt_attributes(ROOT / name, receivers)
    used -= {"errors", "log", "runner", "path", "logger"}  # edgekit's own attributes on self, not TensorRT's
    used -= {"nptype"}  # defined in the wheels' Python tensorrt/__init__.py (def nptype), not in the compiled module
    assert {"engine_host_code_allowed", "set_timing_cache", "QuickPluginCreationRequest", "DLA_core",
            "PREFER_AOT_PYTHON_PLUGINS", "STRONGLY_TYPED", "VERSION_COMPATIBLE"} <= used
    used |= {"AMPERE_PLUS", "SAME_COMPUTE_CAPABILITY", "PLUGIN_V3"}  # looked up with names held in variables
    for b in tensorrt_bindings.values():
        assert b.undefined(used) == [], b.version


# ---------------------------------------------------------------- registration as tensorrt.plugin sees it


def test_aot_impls_declare_every_registered_field(tensorrt_plugin):
    """TensorRT calls aot_impl(*inputs, *every field value, outputs, tactic): the signature must name every
    registered field, in registration order, whatever tensorrt.plugin's own validation accepts."""
    plugins.register_tensorrt()
    plugins.register_tensorrt()  # idempotent
    for name, op in plugins.OPS.items():
        definition = tensorrt_plugin.definition(f"edgekit::{name}")
        module = importlib.import_module(op.tensorrt_module)
        assert dict(definition.input_attrs) == module.PLUGIN.field_kinds == {a.name: a.kind for a in op.schema.attributes}
        assert definition.input_tensor_names == [t.name for t in op.schema.inputs]
        expected = [*definition.input_tensor_names, *definition.input_attrs, "outputs", "tactic"]
        assert list(inspect.signature(definition.aot_impl_func).parameters) == expected, name
        assert definition.aot_impl_attr_names == list(definition.input_attrs)
        assert definition.impl_func is None  # AOT only: engines carry the kernel, no Python at run time


def test_an_aot_impl_missing_a_field_fails_where_tensorrt_calls_it(tensorrt_plugin):
    """The check above is not cosmetic: tensorrt.plugin accepts an aot_impl that names a subset of the fields
    (issue 16's bug), and the build then fails inside get_launch_params, as it would in TensorRT."""
    trtp, trt = tensorrt_plugin.trtp, tensorrt_plugin.trt

    @trtp.register("edgekit_check::Subset")
    def subset_desc(x: trtp.TensorDesc, alpha: float, count: int) -> trtp.TensorDesc:
        return x.like()

    @trtp.aot_impl("edgekit_check::Subset")
    def subset_aot_impl(x: trtp.TensorDesc, alpha: float, outputs: Tuple[trtp.TensorDesc], tactic: int
                        ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        return "k", "ptx", trtp.KernelLaunchParams(), trtp.SymIntExprs(0)

    with pytest.raises(TypeError, match="positional argument"):
        tensorrt_stand_in.build_plugin_layer(trt, "Subset", "edgekit_check", {"alpha": 0.5, "count": 3, "aot": 1},
                                             [("B", 4)], DataType.FLOAT, {"B": (1, 2, 4)})


# ---------------------------------------------------------------- layers built as TensorRT builds them


@pytest.mark.parametrize("dtype", ["HALF", "FLOAT"])
def test_tensorrt_builds_a_window_attention_layer(tensorrt_plugin, aot_kernels, monkeypatch, dtype):
    calls = precompiled(monkeypatch, wa_plugin, aot_kernels, "window_attention", 0.17)
    wa_plugin.register()
    attributes = WA_SCHEMA.node_attributes(scale=0.17, num_heads=2)  # the exported node's attributes
    qkv, bias = ("B", 2, "N", 32), (4, 2, "N", "N")
    # B_ = batch * 4 windows, dynamic up to Swin-T-like batch 512; N dynamic up to 144 (12x12 windows)
    profile = {"B": (4, 64, 2048), "N": (49, 100, 144)}
    with tensorrt_aot.building_for(AMPERE_PLUS):
        layer = tensorrt_stand_in.build_plugin_layer(tensorrt_plugin.trt, "WindowAttention", "edgekit", attributes,
                                                     [qkv, qkv, qkv, bias], DataType[dtype], profile)
    triton_dtype = DTYPES[dtype]
    config, kernel = aot_kernels[("window_attention", triton_dtype, 144, 32, 0.17)]
    (call,) = set(calls)  # compiled for the profile maximum, with the scoped target
    assert call[:3] == (triton_dtype, 144, 32) and call[3] == pytest.approx(0.17) and call[4] == AMPERE_PLUS
    assert (layer.kernel_name, layer.ptx) == (kernel.name, kernel.ptx.encode())
    assert layer.output_types == [DataType[dtype]]
    assert [[e.evaluate(B=8, N=100) for e in shape] for shape in layer.output_shapes] == [[8, 2, 100, 32]]
    for b, n in [(4, 49), (8, 100), (64, 144), (2048, 144)]:
        assert layer.grid(B=b, N=n) == wa_launch.grid(config, b, 2, n) == (b * 2, -(-n // config.block_m), 1)
        assert layer.args(B=b, N=n) == (n, 32, 2, 4)  # seq_len, head_dim, heads, windows: the kernel's int32s
        assert layer.block(B=b, N=n) == (config.threads_per_block, 1, 1)
        assert layer.grid(B=b, N=n)[1] <= 65535  # CUDA's grid y limit; x allows 2**31 - 1
    assert layer.shared_mem(B=8, N=100) == kernel.shared_mem


@pytest.mark.parametrize("dtype", ["HALF", "FLOAT"])
def test_tensorrt_builds_a_linear_attention_layer(tensorrt_plugin, aot_kernels, monkeypatch, dtype):
    calls = precompiled(monkeypatch, la_plugin, aot_kernels, "linear_attention", 1e-6)
    la_plugin.register()
    attributes = LA_SCHEMA.node_attributes(eps=1e-6, kernel="relu")
    qkv = ("B", 8, "N", 16)
    profile = {"B": (1, 2, 16), "N": (49, 196, 256)}
    with tensorrt_aot.building_for(AMPERE_PLUS):
        layer = tensorrt_stand_in.build_plugin_layer(tensorrt_plugin.trt, "LinearAttention", "edgekit", attributes,
                                                     [qkv, qkv, qkv], DataType[dtype], profile)
    triton_dtype = DTYPES[dtype]
    config, kernel = aot_kernels[("linear_attention", triton_dtype, 256, 16, 1e-6)]
    (call,) = set(calls)
    assert call[:3] == (triton_dtype, 256, 16) and call[3] == pytest.approx(1e-6) and call[4] == AMPERE_PLUS
    assert (layer.kernel_name, layer.ptx) == (kernel.name, kernel.ptx.encode())
    assert [[e.evaluate(B=2, N=196) for e in shape] for shape in layer.output_shapes] == [[2, 8, 196, 16]]
    for b, n in [(1, 49), (2, 196), (16, 256)]:
        assert layer.grid(B=b, N=n) == la_launch.grid(config, b, 8, 16) == (b * 8, 1, 1)
        assert layer.args(B=b, N=n) == (n, 16)
        assert layer.block(B=b, N=n) == (config.threads_per_block, 1, 1)
    assert layer.shared_mem(B=2, N=196) == kernel.shared_mem


def test_an_unsupported_feature_map_fails_the_build(tensorrt_plugin):
    """LinearAttention's register function checks ``kernel`` (as the parser delivers it, NUL included)."""
    la_plugin.register()
    attributes = {**LA_SCHEMA.node_attributes(eps=1e-6, kernel="relu"), "kernel": "softmax"}
    with pytest.raises(ValueError, match="relu"):
        tensorrt_stand_in.build_plugin_layer(tensorrt_plugin.trt, "LinearAttention", "edgekit", attributes,
                                             [("B", 8, "N", 16)] * 3, DataType.FLOAT, {"B": (1, 2, 16), "N": (9, 9, 9)})
