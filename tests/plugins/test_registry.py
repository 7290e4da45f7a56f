"""The plugin registry (``edgekit.plugins``), the shared schema types and the TensorRT AOT helpers.

ONNX models here are tiny graphs written with ``onnx.parser``; numerical checks use explicit tolerances.
"""
from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnx.parser
import pytest
import torch

from edgekit import plugins
from edgekit.plugins import op_schema, tensorrt_aot

BOTH_OPS = """
<ir_version: 10, opset_import: ["" : {opset}, "edgekit" : 1]>
g (float[2, 2, 16, 8] q, float[2, 2, 16, 8] k, float[2, 2, 16, 8] v, float[1, 2, 16, 16] bias)
  => (float[2, 2, 16, 8] out)
{{
    windowed = edgekit.WindowAttention <scale: float = 0.35, num_heads: int = 2> (q, k, v, bias)
    out = edgekit.LinearAttention <eps: float = 0.00001, kernel: string = "relu"> (windowed, k, v)
}}
"""


def both_ops_model(opset: int = 17) -> onnx.ModelProto:
    return onnx.parser.parse_model(BOTH_OPS.format(opset=opset))


def feeds(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shapes = dict(q=(2, 2, 16, 8), k=(2, 2, 16, 8), v=(2, 2, 16, 8), bias=(1, 2, 16, 16))
    return {name: torch.randn(shape, generator=g).numpy() for name, shape in shapes.items()}


def both_ops_reference(f: dict) -> np.ndarray:
    from edgekit.plugins.linear_attention.reference import linear_attention
    from edgekit.plugins.window_attention.reference import window_attention

    q, k, v, bias = (torch.from_numpy(f[n]) for n in ("q", "k", "v", "bias"))
    return linear_attention(window_attention(q, k, v, bias, 0.35), k, v, 1e-5).numpy()


# ---------------------------------------------------------------- registry


def test_registry_lists_both_ops_with_their_parts():
    assert sorted(plugins.OPS) == ["LinearAttention", "WindowAttention"]
    for name, op in plugins.OPS.items():
        assert op.name == op.schema.name == name
        assert (op.schema.domain, op.schema.version) == ("edgekit", 1)
        function = op.build_function(17)
        assert (function.domain, function.name) == ("edgekit", name)
        assert list(function.attribute) == op.schema.function_attribute_names()
        assert len(function.input) == len(op.schema.inputs) and len(function.output) == 1
        modules = {p.name for p in op.folder.iterdir()}
        assert {"schema.py", "reference.py", "torch_op.py", "onnx_function.py", "launch_params.py",
                "triton_kernel.py", "trt_plugin.py", "README.md"} <= modules
    assert plugins.OPS["WindowAttention"].torch_op is plugins.window_attention.window_attention


def test_attach_functions_adds_bodies_imports_and_runs(run_onnxruntime):
    model = both_ops_model()
    attached = plugins.attach_functions(model)
    assert [(f.domain, f.name) for f in attached.functions] == [("edgekit", "LinearAttention"), ("edgekit", "WindowAttention")]
    assert len(model.functions) == 0  # the input is not modified
    onnx.checker.check_model(attached, full_check=True)
    assert plugins.attach_functions(attached).SerializeToString() == attached.SerializeToString()  # idempotent
    f = feeds()
    # two fp32 ops chained, same math as the references in another order: a few ulps of |out| < 4
    assert np.abs(run_onnxruntime(attached, f) - both_ops_reference(f)).max() <= 1e-5


def test_attach_functions_completes_node_attributes_for_tensorrt():
    attached = plugins.attach_functions(both_ops_model())
    for node in attached.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        # what TensorRT's ONNX parser needs to pick the plugin (and its AOT implementation) over the function
        assert attrs["plugin_namespace"] == b"edgekit" and attrs["aot"] == 1


def test_attach_functions_follows_the_model_opset_and_adds_the_domain_import():
    model = both_ops_model(opset=18)
    del model.opset_import[:]
    model.opset_import.extend([onnx.helper.make_opsetid("", 18)])
    attached = plugins.attach_functions(model)
    assert {(i.domain, i.version) for i in attached.opset_import} == {("", 18), ("edgekit", 1)}
    assert all({(i.domain, i.version) for i in f.opset_import} == {("", 18)} for f in attached.functions)
    onnx.checker.check_model(attached, full_check=True)


def test_attach_functions_rejects_what_it_cannot_serve():
    with pytest.raises(ValueError, match="opset >= 17"):
        plugins.attach_functions(both_ops_model(opset=16))
    bad_eps = onnx.parser.parse_model(BOTH_OPS.format(opset=17).replace("0.00001", "1e-15"))
    with pytest.raises(ValueError, match="eps"):
        plugins.attach_functions(bad_eps)
    unknown = onnx.parser.parse_model("""
    <ir_version: 10, opset_import: ["" : 17, "edgekit" : 1]>
    g (float[2] x) => (float[2] y) { y = edgekit.FancyAttention (x) }
    """)
    with pytest.raises(ValueError, match="FancyAttention"):
        plugins.attach_functions(unknown)
    plain = onnx.parser.parse_model("""
    <ir_version: 10, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    assert plugins.attach_functions(plain).SerializeToString() == plain.SerializeToString()
    assert plugins.used_ops(plain) == []


def test_inline_functions_leaves_standard_ops_only(run_onnxruntime, run_openvino):
    inlined = plugins.inline_functions(both_ops_model())  # attaches first when needed
    assert {n.domain for n in inlined.graph.node} == {""}
    assert not any(f.domain == "edgekit" for f in inlined.functions)
    assert {i.domain for i in inlined.opset_import} == {""}
    onnx.checker.check_model(inlined, full_check=True)
    f = feeds(1)
    want = both_ops_reference(f)
    # same bound and reason as test_attach_functions_adds_bodies_imports_and_runs; OpenVINO asked for f32
    assert np.abs(run_onnxruntime(inlined, f) - want).max() <= 1e-5
    assert np.abs(run_openvino(inlined, f) - want).max() <= 1e-5


def test_inlined_nodes_are_named_after_their_call():
    """The inliner leaves body nodes unnamed; edgekit names them ``<call>/<op>_<k>`` so profiles and NNCF's
    ignored scope can tell which plugin a node came from (the second call reads the first one's output)."""
    model = both_ops_model()
    model.graph.node[0].name, model.graph.node[1].name = "/blk/attn/WindowAttention", "/blk/LinearAttention"
    inlined = plugins.inline_functions(model)
    names = [n.name for n in inlined.graph.node]
    assert len(set(names)) == len(names)
    window = [n for n in inlined.graph.node if plugins.inlined_from("/blk/attn/WindowAttention", n.name)]
    linear = [n for n in inlined.graph.node if plugins.inlined_from("/blk/LinearAttention", n.name)]
    assert window and linear and len(window) + len(linear) == len(names)
    assert any("windowed" in n.output for n in window) and any("out" in n.output for n in linear)
    assert {n.op_type for n in window} >= {"MatMul", "Softmax"}
    assert not plugins.inlined_from("/blk", window[0].name)  # only the call's own body, not deeper names
    # unnamed calls get <op type>_<index>
    assert all(n.name.startswith(("WindowAttention_0/", "LinearAttention_1/"))
               for n in plugins.inline_functions(both_ops_model()).graph.node)


def test_plugin_hashes_cover_each_plugins_sources():
    hashes = plugins.plugin_hashes()
    assert sorted(hashes) == sorted(plugins.OPS)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes.values())
    assert hashes == plugins.plugin_hashes()  # deterministic
    assert hashes["WindowAttention"] != hashes["LinearAttention"]
    op = plugins.OPS["LinearAttention"]
    files = plugins._source_files(op)
    names = {p.name for p in files}
    assert {"triton_kernel.py", "trt_plugin.py", "onnx_function.py", "op_schema.py", "tensorrt_aot.py"} <= names
    assert all(p.suffix == ".py" for p in files)  # what a wheel install has too
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(plugins._ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    assert hashes["LinearAttention"] == digest.hexdigest()


def test_custom_translation_table_maps_both_custom_ops():
    table = plugins.custom_translation_table()
    assert set(table) == {torch.ops.edgekit.window_attention.default, torch.ops.edgekit.linear_attention.default}


# ---------------------------------------------------------------- shared schema types


def test_attribute_spec_coercion_and_checks():
    spec = op_schema.AttributeSpec("n", int, "count", check=lambda n: None if n > 0 else "must be > 0")
    assert spec.coerce(3.0) == 3 and spec.coerce(np.int32(4)) == 4
    with pytest.raises(ValueError, match="integer"):
        spec.coerce(2.5)
    with pytest.raises(ValueError, match="must be > 0"):
        spec.coerce(0)
    floor = op_schema.at_least(1e-6)
    assert floor(float(np.float32(1e-6))) is None  # ONNX stores float32: 1e-6 comes back as 9.99999997e-7
    assert floor(9e-7) is not None and floor(float("inf")) is not None
    assert op_schema.torchscript_attribute_kwargs({"scale": 0.5, "num_heads": 2, "plugin_namespace": "edgekit"}) == {
        "scale_f": 0.5, "num_heads_i": 2, "plugin_namespace_s": "edgekit",
    }


def test_onnx_opschema_declares_inputs_attributes_and_routing():
    schema = plugins.OPS["WindowAttention"].schema.onnx_opschema()
    assert (schema.name, schema.domain, schema.since_version) == ("WindowAttention", "edgekit", 1)
    assert [i.name for i in schema.inputs] == ["q", "k", "v", "bias"]
    assert set(schema.attributes) == {"scale", "num_heads", "plugin_namespace", "aot"}
    assert schema.attributes["scale"].required and not schema.attributes["aot"].required


# ---------------------------------------------------------------- TensorRT AOT helpers


class _Enum:
    def __init__(self, name):
        self.name = name


def test_tensorrt_dtype_and_field_mapping():
    assert tensorrt_aot.triton_dtype(_Enum("FLOAT")) == "fp32"
    assert tensorrt_aot.triton_dtype(_Enum("HALF")) == "fp16"
    assert tensorrt_aot.triton_dtype("DataType.HALF") == "fp16"
    with pytest.raises(TypeError, match="BF16"):
        tensorrt_aot.triton_dtype(_Enum("BF16"))
    assert tensorrt_aot.autotune_types(3) == "FP32|FP16, FP32|FP16, FP32|FP16"
    assert tensorrt_aot.plugin_field_value(b"relu\x00", str) == "relu"
    assert tensorrt_aot.plugin_field_value("relu\x00", str) == "relu"
    assert tensorrt_aot.plugin_field_value(np.array([0.25], np.float32), float) == 0.25
    assert tensorrt_aot.plugin_field_value(np.int32(3), int) == 3


def test_dim_upper_bound_reads_profile_maximum_of_dynamic_dims():
    class Shape(tuple):
        max = (8, 4, 256, 32)

    shape = Shape((-1, 4, -1, 32))
    assert [tensorrt_aot.dim_upper_bound(shape, axis) for axis in range(4)] == [8, 4, 256, 32]


PTX = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry k(
	.param .u64 .ptr .global .align 1 k_param_0,
	.param .u32 k_param_1,
	.param .u64 .ptr .global .align 1 k_param_2,
	.param .u64 .ptr .global .align 1 k_param_3,
	.param .u64 .ptr .global .align 1 k_param_4
)
{
	ld.param.b64 %rd1, [k_param_0];
	ld.param.b32 %r1, [k_param_1];
	ld.param.b64 %rd2, [k_param_2];
	ret;
}
"""


def test_strip_trailing_params_keeps_what_tensorrt_passes():
    stripped = tensorrt_aot.strip_trailing_params(PTX, "k", keep=3)
    assert [p.split()[-1] for p in tensorrt_aot.entry_params(stripped, "k")] == ["k_param_0", "k_param_1", "k_param_2"]
    assert stripped.endswith(PTX[PTX.index("{"):])  # body untouched
    with pytest.raises(ValueError, match="k_param_2 is used"):
        tensorrt_aot.strip_trailing_params(PTX, "k", keep=2)
    with pytest.raises(ValueError, match="fewer"):
        tensorrt_aot.strip_trailing_params(PTX, "k", keep=6)
    with pytest.raises(ValueError, match="no .entry"):
        tensorrt_aot.strip_trailing_params(PTX, "other", keep=3)


def test_kernel_signature_is_in_tensorrt_launch_order():
    signature = tensorrt_aot.kernel_signature(("a", "b"), ("n",), ("out",), "fp16", ("BLOCK",))
    assert list(signature.items()) == [("a", "*fp16"), ("b", "*fp16"), ("n", "i32"), ("out", "*fp16"), ("BLOCK", "constexpr")]


def test_kernel_target_follows_the_engines_hardware_compatibility():
    """PTX for the lowest architecture the engine promises, at the lowest PTX version it can be named in."""
    ampere_plus = tensorrt_aot.kernel_target("ampere+", "9.0")  # an H100 build that must run on an A100 too
    assert (ampere_plus.sm, ampere_plus.ptx) == ("sm_80", "7.0")
    orin = tensorrt_aot.kernel_target("none", "8.7")
    assert (orin.sm, orin.ptx, orin.describe()) == ("sm_87", "7.4", "sm_87, PTX 7.4")
    hopper = tensorrt_aot.kernel_target("same-cc", "9.0")  # Triton writes sm_90a for 9.0: PTX 8.0 at least
    assert hopper.to_dict() == {"arch": "sm_90a", "ptx_version": "8.0", "reason": hopper.reason}
    assert "same-cc" in hopper.reason and "ampere+" in ampere_plus.reason
    with pytest.raises(ValueError, match="needs a build GPU of compute capability >= 8.0, this one is 7.5"):
        tensorrt_aot.kernel_target("ampere+", "7.5")
    with pytest.raises(ValueError, match=r"no PTX target for sm_75 \(they are compiled for sm_80, sm_86"):
        tensorrt_aot.kernel_target("none", "7.5")
    with pytest.raises(ValueError, match="no PTX target for sm_101"):  # Thor under CUDA 12: Triton 3.9 cannot
        tensorrt_aot.kernel_target("none", "10.1")
    with pytest.raises(ValueError, match="unknown hardware compatibility"):
        tensorrt_aot.kernel_target("turing+", "9.0")


def test_building_for_scopes_the_target_of_aot_impl_calls():
    a, b = tensorrt_aot.KernelTarget(80, 70), tensorrt_aot.KernelTarget(87, 74)
    with tensorrt_aot.building_for(a):
        assert tensorrt_aot.current_kernel_target() == a
        with tensorrt_aot.building_for(b):
            assert tensorrt_aot.current_kernel_target() == b
        assert tensorrt_aot.current_kernel_target() == a
    assert tensorrt_aot._SCOPED_TARGET == []
    with pytest.raises(RuntimeError), tensorrt_aot.building_for(a):  # left on an error too
        raise RuntimeError("build failed")
    assert tensorrt_aot._SCOPED_TARGET == []


def test_ptx_header_reads_version_and_target():
    assert tensorrt_aot.ptx_header(PTX) == ("8.0", "sm_80")
    assert tensorrt_aot.ptx_header("//\n.version 9.0\n.target sm_110a\n") == ("9.0", "sm_110a")
    with pytest.raises(ValueError, match=".version or .target"):
        tensorrt_aot.ptx_header(".address_size 64\n")


def test_register_tensorrt_on_a_tensorrt_without_aot_plugins_says_what_to_do(monkeypatch):
    import sys

    from tests.tensorrt_stand_in import compiled_module

    monkeypatch.setitem(sys.modules, "tensorrt", compiled_module("10.3.0.30", quick_plugins=False))
    with pytest.raises(RuntimeError, match=r"^TensorRT 10.3.0.30 has no ahead-of-time Python plugins \(TensorRT >= "
                                           r"10.9\): build edgekit's nodes from their ONNX function bodies instead"):
        plugins.register_tensorrt()
