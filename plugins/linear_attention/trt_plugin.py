"""TensorRT plugin "edgekit::LinearAttention" through ``tensorrt.plugin``, with an ahead-of-time implementation.

``register()`` (the only function that imports TensorRT) declares:

- ``@trtp.register``: inputs q, k, v; fields ``eps`` (float) and ``kernel`` (str), exactly the ONNX node's
  attribute names, so the ONNX parser fills them; output described as ``q.like()``;
- ``@trtp.autotune``: all four I/O fp32 together or fp16 together, LINEAR (contiguous) layout;
- ``@trtp.aot_impl``: the Triton kernel compiled to PTX for the engine's kernel target
  (``tensorrt_aot.current_kernel_target()``: architecture and PTX version, never Triton's defaults),
  grid/block/shared memory and the int32 extra args (N, d) as symbolic expressions of q's shape, so dynamic
  batch and resolution work and the engine runs without Python. ``eps`` is baked in as a constexpr (extra
  args are int32 only). It declares every registered field, used or not: TensorRT calls it with all of
  them, ``aot_impl(*inputs, *every_field_value, outputs, tactic)`` (``_TemplateAOTPlugin.
  get_launch_params``), whatever subset the signature names.

The ONNX node carries ``plugin_namespace="edgekit"`` (how the parser finds the plugin) and ``aot=1`` (use
this implementation). Everything but ``register()`` is importable and tested without TensorRT.
"""
# No ``from __future__ import annotations``: tensorrt.plugin inspects the annotations as classes.
import functools
from typing import List, Tuple, Union

from edgekit.plugins import tensorrt_aot
from edgekit.plugins.linear_attention.launch_params import LinearAttentionConfig, grid, kernel_config
from edgekit.plugins.linear_attention.schema import SCHEMA

# the kernel's arguments in TensorRT launch order: input pointers, int32 extra args, output pointer; constexprs
PLUGIN = tensorrt_aot.AotPlugin(SCHEMA, inputs=("q_ptr", "k_ptr", "v_ptr"),
                                scalars=("seq_len", "head_dim"),
                                constexprs=("EPS", "BLOCK_N", "BLOCK_D", "BLOCK_DV", "DOT_PRECISION"))


def kernel_constexprs(config: LinearAttentionConfig, eps: float) -> dict:
    return {
        "EPS": float(eps), "BLOCK_N": config.block_n, "BLOCK_D": config.block_d,
        "BLOCK_DV": config.block_dv, "DOT_PRECISION": config.dot_precision,
    }


@functools.lru_cache(maxsize=None)  # TensorRT asks once per type combination and tactic; compiling takes seconds
def compile_kernel(dtype: str, seq_len: int, head_dim: int, eps: float, target: tensorrt_aot.KernelTarget):
    """(config, CompiledKernel) for at most ``seq_len`` tokens, as PTX for ``target``."""
    from edgekit.plugins.linear_attention.triton_kernel import linear_attention_kernel

    config = kernel_config(seq_len, head_dim, dtype)
    return config, PLUGIN.compile(linear_attention_kernel, dtype, kernel_constexprs(config, eps), config, target)


def extra_args(q_shape_expr) -> tuple:
    """The kernel's int32 args from shape expressions (or ints), in ``PLUGIN.scalars`` order."""
    _, _, seq_len, head_dim = q_shape_expr
    return (seq_len, head_dim)


def register() -> None:
    """Register the plugin with TensorRT (idempotent). Needs TensorRT >= 10.9 (``tensorrt.plugin.aot_impl``)
    and Triton at engine build; ``edgekit.targets.tensorrt.device.aot_plugin_problem`` says whether it can."""
    import tensorrt.plugin as trtp

    if PLUGIN.is_registered(trtp):
        return

    @trtp.register(PLUGIN.plugin_id)
    def linear_attention_desc(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, eps: float, kernel: str
    ) -> trtp.TensorDesc:
        SCHEMA.resolve(eps=eps, kernel=tensorrt_aot.plugin_field_value(kernel, str))  # fail the build, not the run
        return q.like()

    @trtp.autotune(PLUGIN.plugin_id)
    def linear_attention_autotune(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc]
    ) -> List[trtp.AutoTuneCombination]:
        return PLUGIN.autotune(trtp)

    @trtp.aot_impl(PLUGIN.plugin_id)
    def linear_attention_aot_impl(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, eps: float, kernel: str,
        outputs: Tuple[trtp.TensorDesc], tactic: int,
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        # kernel (the feature map) was checked by linear_attention_desc; TensorRT passes it all the same
        dtype = tensorrt_aot.triton_dtype(q.dtype)
        seq_len = tensorrt_aot.dim_upper_bound(q.shape, 2)
        head_dim = tensorrt_aot.dim_upper_bound(q.shape, 3)
        config, compiled = compile_kernel(dtype, seq_len, head_dim, tensorrt_aot.plugin_field_value(eps, float),
                                          tensorrt_aot.current_kernel_target())

        batch, num_heads, _, head_dim_expr = q.shape_expr
        grid_x, grid_y, _ = grid(config, batch, num_heads, head_dim_expr, cdiv=trtp.cdiv)
        return PLUGIN.launch(trtp, compiled, grid_x, grid_y, extra_args(q.shape_expr))
