"""edgekit::LinearAttention: reference, torch export, ONNX function (ORT, OpenVINO), Triton kernel, TensorRT wiring.

Every implementation is compared with ``reference.linear_attention``; the reference itself is compared with
the quadratic (N x N) form computed independently in float64. The fp16 overflow test shows the trap the
fp32 accumulation avoids: a naive fp16 computation of the same op returns inf/nan on the same input.
"""
from __future__ import annotations

import io

import numpy as np
import onnx
import onnx.parser
import pytest
import torch
import torch.nn.functional as F

from edgekit import plugins
from edgekit.plugins.linear_attention import launch_params, reference, schema, torch_op, trt_plugin
from edgekit.plugins.linear_attention.schema import SCHEMA
from tests.helpers import cosine

# EfficientViT-B1 stage 3 at 224 px, cut down: 14x14 tokens (N=196), head_dim 16.
EFFICIENTVIT = dict(batch=2, heads=4, n=196, d=16)


def make_inputs(batch=2, heads=4, n=196, d=16, dtype=torch.float32, seed=0):
    """q, k, v before the ReLU kernel: centred, so about half of q and k is cut by the ReLU."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=g).to(dtype) for _ in range(3)]


def quadratic_float64(q, k, v, eps):
    """The same op through the explicit (N x N) attention map, in float64: independent of the k^T v trick."""
    q, k, v = F.relu(q.double()), F.relu(k.double()), v.double()
    weights = q @ k.transpose(-2, -1)  # (B, H, N, N), all >= 0
    return (weights @ v) / (weights.sum(dim=-1, keepdim=True) + eps)


class LinearAttentionModel(torch.nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, q, k, v):
        return torch_op.linear_attention(q, k, v, self.eps)


def export_legacy(model, args) -> onnx.ModelProto:
    f = io.BytesIO()
    torch.onnx.export(
        model, tuple(args), f, dynamo=False, opset_version=17, custom_opsets={"edgekit": 1},
        input_names=["q", "k", "v"], output_names=["out"],
    )
    return onnx.load_from_string(f.getvalue())


# ---------------------------------------------------------------- reference and schema


def test_reference_matches_quadratic_form():
    q, k, v = make_inputs(batch=2, heads=2, n=7, d=5)
    got = reference.linear_attention(q, k, v, 1e-6)
    want = quadratic_float64(q, k, v, 1e-6)
    # fp32 vs float64 on 7-term sums of O(1) values; |out| <= max|v| ~ 3: a few fp32 ulps
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), want, atol=2e-6, rtol=0)


def test_reference_fp16_computes_in_fp32():
    q, k, v = make_inputs(n=64, d=16, dtype=torch.float16)
    got = reference.linear_attention(q, k, v)
    want = reference.linear_attention(q.float(), k.float(), v.float())
    assert got.dtype == torch.float16
    assert (got.float() - want).abs().max() <= 2**-10  # only the last rounding: half an ulp of |out| < 2


def test_schema_shape_rule_and_attributes():
    assert schema.output_shape((2, 4, 196, 16), (2, 4, 196, 16), (2, 4, 196, 16)) == (2, 4, 196, 16)
    with pytest.raises(ValueError, match="same shape"):
        schema.output_shape((2, 4, 196, 16), (2, 4, 196, 16), (2, 4, 196, 32))
    with pytest.raises(ValueError, match="B, heads, N, d"):
        schema.output_shape((4, 196, 16), (4, 196, 16), (4, 196, 16))
    assert SCHEMA.resolve() == {"eps": 1e-6, "kernel": "relu"}
    assert SCHEMA.resolve(eps=np.float32(1e-6))["eps"] == pytest.approx(1e-6)  # float32-rounded 1e-6 passes
    with pytest.raises(ValueError, match="underflow"):
        SCHEMA.resolve(eps=1e-15)  # EfficientViT's original value
    with pytest.raises(ValueError, match="relu"):
        SCHEMA.resolve(kernel="softmax")


# ---------------------------------------------------------------- torch entry point


def test_torch_op_eager_is_the_reference_and_differentiable():
    q, k, v = make_inputs(n=32, d=8)
    assert torch.equal(torch_op.linear_attention(q, k, v, 1e-5), reference.linear_attention(q, k, v, 1e-5))
    with pytest.raises(ValueError, match="eps"):
        torch_op.linear_attention(q, k, v, 1e-15)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    torch.ops.edgekit.linear_attention(*leaves, 1e-5, "relu").square().sum().backward()
    ref_leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    reference.linear_attention(*ref_leaves, 1e-5).square().sum().backward()
    for got, want in zip(leaves, ref_leaves):
        assert torch.allclose(got.grad, want.grad, atol=1e-5)


def test_legacy_export_writes_one_plugin_node():
    q, k, v = make_inputs(**EFFICIENTVIT)
    model = export_legacy(LinearAttentionModel(2e-6), (q, k, v))
    assert [(n.domain, n.op_type) for n in model.graph.node] == [("edgekit", "LinearAttention")]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"eps": pytest.approx(2e-6), "kernel": b"relu", "plugin_namespace": b"edgekit", "aot": 1}
    assert list(model.graph.node[0].input) == ["q", "k", "v"]
    assert {(i.domain, i.version) for i in model.opset_import} == {("", 17), ("edgekit", 1)}
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == list(q.shape)


def test_legacy_export_runs_in_onnxruntime_and_openvino(run_onnxruntime, run_openvino):
    q, k, v = make_inputs(**EFFICIENTVIT)
    want = reference.linear_attention(q, k, v)
    model = plugins.attach_functions(export_legacy(LinearAttentionModel(), (q, k, v)))
    onnx.checker.check_model(model, full_check=True)
    feeds = {"q": q.numpy(), "k": k.numpy(), "v": v.numpy()}
    # Same fp32 math in another order: kv sums 196 products of O(1) values (|kv| ~ 50); the output is a
    # ratio of such sums with |out| <= max|v| ~ 4: relative rounding ~1e-6, so 1e-5 absolute has margin.
    assert np.abs(run_onnxruntime(model, feeds) - want.numpy()).max() <= 1e-5
    # OpenVINO in f32 (its bf16 default here would be ~1e-2 off): same bound, same reason
    assert np.abs(run_openvino(plugins.inline_functions(model), feeds) - want.numpy()).max() <= 1e-5


def test_function_body_fp16_and_default_attributes_in_onnxruntime(run_onnxruntime):
    """A hand-written fp16 node without attributes: attach_functions fills eps/kernel, the body casts back."""
    text = """
    <ir_version: 10, opset_import: ["" : 17, "edgekit" : 1]>
    g (float16[1, 2, 64, 16] q, float16[1, 2, 64, 16] k, float16[1, 2, 64, 16] v) => (float16[1, 2, 64, 16] out)
    {
        out = edgekit.LinearAttention (q, k, v)
    }
    """
    model = plugins.attach_functions(onnx.parser.parse_model(text))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"eps": pytest.approx(1e-6), "kernel": b"relu", "plugin_namespace": b"edgekit", "aot": 1}
    q, k, v = make_inputs(batch=1, heads=2, n=64, d=16, dtype=torch.float16)
    got = run_onnxruntime(model, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy()})
    assert got.dtype == np.float16
    # both round an fp32 result to fp16: at most one fp16 ulp apart (2**-10 at |out| < 2)
    assert np.abs(got.astype(np.float32) - reference.linear_attention(q, k, v).float().numpy()).max() <= 2**-10


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's own pytree deprecation inside torch.export
def test_dynamo_export_translates_the_custom_op(run_onnxruntime):
    q, k, v = make_inputs(batch=1, heads=2, n=49, d=16)
    program = torch.onnx.export(
        LinearAttentionModel().eval(), (q, k, v), dynamo=True, opset_version=18,  # dynamo writes >= 18 even when asked for 17
        custom_translation_table=plugins.custom_translation_table(), verbose=False,
    )
    model = program.model_proto
    assert [(n.domain, n.op_type) for n in model.graph.node] == [("edgekit", "LinearAttention")]
    model = plugins.attach_functions(model)
    feeds = {i.name: t.numpy() for i, t in zip(model.graph.input, (q, k, v))}
    # same fp32 math, other order; see test_legacy_export_runs_in_onnxruntime_and_openvino
    assert np.abs(run_onnxruntime(model, feeds) - reference.linear_attention(q, k, v).numpy()).max() <= 1e-5


# ---------------------------------------------------------------- Triton kernel


@pytest.mark.parametrize(
    "shape,block_dv",
    [
        (dict(batch=2, heads=2, n=196, d=16), None),  # EfficientViT: 14x14 tokens, several token blocks
        (dict(batch=1, heads=3, n=49, d=24), None),  # N and d not powers of two
        (dict(batch=1, heads=2, n=70, d=32), 16),  # value channels split over two programs
    ],
    ids=["N196-d16", "N49-d24", "N70-d32-split"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_triton_kernel_matches_reference(shape, block_dv, dtype, device):
    from edgekit.plugins.linear_attention import triton_kernel

    q, k, v = (t.to(device) for t in make_inputs(**shape, dtype=dtype))
    config = launch_params.kernel_config(shape["n"], shape["d"], triton_kernel.TORCH_TO_TRITON[dtype], block_dv)
    got = triton_kernel.linear_attention(q, k, v, 1e-6, config).float()
    want = reference.linear_attention(q.float(), k.float(), v.float(), 1e-6)
    if dtype == torch.float32:
        # fp32 throughout, blocked sums in another order; |out| <= max|v| ~ 4: a few fp32 ulps
        assert (got - want).abs().max().item() <= 1e-5
    else:
        # fp32 state; only the output is rounded to fp16 (half an ulp: 2**-11 .. 2**-9 for |out| up to 4)
        assert (got - want).abs().max().item() <= 2**-9
        assert cosine(got, want) >= 0.9999


def test_fp16_overflow_trap(device):
    """4096 tokens of magnitude ~8: k^T v reaches ~4096 * 64 = 262144 > 65504 (fp16 max).

    A naive fp16 computation overflows to inf and the ratio becomes nan; the kernel, accumulating in fp32,
    still matches the fp32 reference.
    """
    from edgekit.plugins.linear_attention import triton_kernel

    g = torch.Generator().manual_seed(0)
    q, k, v = (8 + 2 * torch.rand(1, 1, 4096, 16, generator=g) for _ in range(3))
    q16, k16, v16 = (t.half() for t in (q, k, v))
    want = reference.linear_attention(q16.float(), k16.float(), v16.float())
    assert want.isfinite().all()

    # the trap is real: the same formula evaluated in fp16 (what a runtime lowering the graph to fp16 does)
    kv16 = F.relu(k16).transpose(-2, -1) @ v16
    naive = (F.relu(q16) @ kv16) / ((F.relu(q16) * F.relu(k16).sum(-2, keepdim=True)).sum(-1, keepdim=True) + 1e-6)
    assert not kv16.isfinite().all()
    assert not naive.isfinite().all()

    got = triton_kernel.linear_attention(q16.to(device), k16.to(device), v16.to(device)).float().cpu()
    assert got.isfinite().all()
    assert cosine(got, want) >= 0.999  # the default fp16 tolerance; measured ~0.99998
    assert (got - want).abs().max().item() <= 2**-6  # |out| ~ 9: half an fp16 ulp is 2**-8, with fp32 sums on top


# ---------------------------------------------------------------- launch parameters


def test_launch_config():
    vit = launch_params.kernel_config(196, 16, "fp16")
    assert (vit.block_n, vit.block_d, vit.block_dv, vit.num_stages, vit.dot_precision) == (64, 16, 16, 2, "tf32")
    assert vit.threads_per_block == 128
    assert launch_params.grid(vit, batch=2, num_heads=8, head_dim=16) == (16, 1, 1)
    assert launch_params.grid(vit, batch=16384, num_heads=8, head_dim=16) == (131072, 1, 1)  # B * heads on x
    small = launch_params.kernel_config(9, 24, "fp32")
    assert (small.block_n, small.block_d, small.block_dv, small.num_stages, small.dot_precision) == (16, 32, 32, 1, "ieee")
    split = launch_params.kernel_config(4096, 128, "fp16")  # wide heads: value channels over two programs
    assert (split.block_n, split.block_d, split.block_dv) == (32, 128, 64)
    assert launch_params.grid(split, 1, 4, 128) == (4, 2, 1)
    for bad in [dict(seq_len=9, head_dim=16, dtype="bf16"), dict(seq_len=9, head_dim=512, dtype="fp32"),
                dict(seq_len=9, head_dim=32, dtype="fp32", block_dv=24), dict(seq_len=9, head_dim=32, dtype="fp32", block_dv=64)]:
        with pytest.raises(ValueError):
            launch_params.kernel_config(**bad)


# ---------------------------------------------------------------- TensorRT


def test_plugin_fields_are_the_exported_node_attributes():
    """The parser copies node attributes named like plugin fields (strings with a trailing NUL)."""
    q, k, v = make_inputs(batch=1, heads=2, n=16, d=8)
    node = export_legacy(LinearAttentionModel(1e-5), (q, k, v)).graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert set(attrs) - set(trt_plugin.PLUGIN.field_kinds) == {"plugin_namespace", "aot"}
    assert list(trt_plugin.PLUGIN.field_kinds) == ["eps", "kernel"]
    # as tensorrt.plugin hands them over: FLOAT -> float32 value, STRING -> str with the parser's NUL
    fields = trt_plugin.PLUGIN.plugin_fields({**attrs, "eps": np.float32(1e-5), "kernel": "relu\x00"})
    assert fields == {"eps": pytest.approx(1e-5), "kernel": "relu"}
    with pytest.raises(ValueError, match="relu"):
        trt_plugin.PLUGIN.plugin_fields({"eps": 1e-5, "kernel": "softmax\x00"})
    assert trt_plugin.extra_args((2, 8, 196, 16)) == (196, 16)


def test_aot_signature_is_the_kernel_signature():
    from edgekit.plugins.linear_attention.triton_kernel import linear_attention_kernel

    signature = trt_plugin.PLUGIN.kernel_signature("fp32")
    assert list(signature) == list(linear_attention_kernel.arg_names)
    assert list(signature.values())[:6] == ["*fp32"] * 3 + ["i32"] * 2 + ["*fp32"]
    assert set(trt_plugin.kernel_constexprs(launch_params.kernel_config(9, 16, "fp32"), 1e-6)) == set(trt_plugin.PLUGIN.constexprs)


def test_aot_kernel_compiles_to_ptx_tensorrt_can_launch(aot_kernels, assert_ptx_assembles):
    """Compiled on the CPU for sm_80 at PTX 7.0 (not Triton's newest); the PTX declares exactly TensorRT's
    arguments and assembles."""
    from edgekit.plugins import tensorrt_aot

    for dtype in ("fp16", "fp32"):
        config, kernel = aot_kernels[("linear_attention", dtype, 256, 16, 1e-6)]
        assert config == launch_params.kernel_config(256, 16, dtype)
        assert kernel.name == "linear_attention_kernel"
        assert tensorrt_aot.ptx_header(kernel.ptx) == ("7.0", "sm_80")
        params = tensorrt_aot.entry_params(kernel.ptx, kernel.name)
        assert [p.split()[1] for p in params] == [".u64"] * 3 + [".u32"] * 2 + [".u64"]
        assert 0 < kernel.shared_mem <= 48 * 1024  # launchable without opting in to more shared memory
        assert_ptx_assembles(kernel.ptx)


@pytest.mark.gpu
def test_tensorrt_engine_fp16_does_not_overflow():
    """fp16 engine on the overflow input: the plugin (fp32 state) matches the fp32 reference."""
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT (not installable on CPU-only machines)")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    plugins.register_tensorrt()
    g = torch.Generator().manual_seed(0)
    q, k, v = (8 + 2 * torch.rand(1, 1, 4096, 16, generator=g) for _ in range(3))
    model = export_legacy(LinearAttentionModel().half(), [t.half() for t in (q, k, v)])
    model = plugins.attach_functions(model)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [parser.get_error(i) for i in range(parser.num_errors)]
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, builder.create_builder_config()))
    context = engine.create_execution_context()
    feeds = {"q": q.half().cuda(), "k": k.half().cuda(), "v": v.half().cuda()}
    out = torch.empty_like(feeds["q"])
    for name, tensor in {**feeds, "out": out}.items():
        context.set_tensor_address(name, tensor.data_ptr())
    context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    want = reference.linear_attention(*(t.float() for t in feeds.values()))
    assert cosine(out.float(), want) >= 0.999  # the default fp16 tolerance
