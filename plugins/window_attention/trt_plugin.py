"""TensorRT plugin "edgekit::WindowAttention" through ``tensorrt.plugin``, with an ahead-of-time implementation.

``register()`` (the only function that imports TensorRT) declares:

- ``@trtp.register``: inputs q, k, v, bias; fields ``scale`` (float) and ``num_heads`` (int), exactly the
  ONNX node's attribute names, so the ONNX parser fills them; output described as ``q.like()``;
- ``@trtp.autotune``: all five I/O fp32 together or fp16 together, LINEAR (contiguous) layout;
- ``@trtp.aot_impl``: the Triton kernel compiled to PTX for the engine's kernel target
  (``tensorrt_aot.current_kernel_target()``: architecture and PTX version, never Triton's defaults),
  grid/block/shared memory and the int32 extra args (N, d, heads, nW) as symbolic expressions of the input
  shapes, so dynamic batch works and the engine runs without Python. ``scale`` is baked in as a constexpr
  (extra args are int32 only). It declares every registered field, used or not: TensorRT calls it with
  all of them, ``aot_impl(*inputs, *every_field_value, outputs, tactic)`` (``_TemplateAOTPlugin.
  get_launch_params``), whatever subset the signature names.

The ONNX node carries ``plugin_namespace="edgekit"`` (how the parser finds the plugin) and ``aot=1`` (use
this implementation). Everything but ``register()`` is importable and tested without TensorRT.
"""
# No ``from __future__ import annotations``: tensorrt.plugin inspects the annotations as classes.
import functools
from typing import List, Tuple, Union

from edgekit.plugins import tensorrt_aot
from edgekit.plugins.window_attention.launch_params import WindowAttentionConfig, grid, kernel_config
from edgekit.plugins.window_attention.schema import SCHEMA

# the kernel's arguments in TensorRT launch order: input pointers, int32 extra args, output pointer; constexprs
PLUGIN = tensorrt_aot.AotPlugin(SCHEMA, inputs=("q_ptr", "k_ptr", "v_ptr", "bias_ptr"),
                                scalars=("seq_len", "head_dim", "num_heads", "num_windows"),
                                constexprs=("SCALE", "BLOCK_M", "BLOCK_N", "BLOCK_D", "DOT_PRECISION"))


def kernel_constexprs(config: WindowAttentionConfig, scale: float) -> dict:
    return {
        "SCALE": float(scale), "BLOCK_M": config.block_m, "BLOCK_N": config.block_n,
        "BLOCK_D": config.block_d, "DOT_PRECISION": config.dot_precision,
    }


@functools.lru_cache(maxsize=None)  # TensorRT asks once per type combination and tactic; compiling takes seconds
def compile_kernel(dtype: str, seq_len: int, head_dim: int, scale: float, target: tensorrt_aot.KernelTarget):
    """(config, CompiledKernel) for windows of at most ``seq_len`` tokens, as PTX for ``target``."""
    from edgekit.plugins.window_attention.triton_kernel import window_attention_kernel

    config = kernel_config(seq_len, head_dim, dtype)
    return config, PLUGIN.compile(window_attention_kernel, dtype, kernel_constexprs(config, scale), config, target)


def extra_args(q_shape_expr, bias_shape_expr) -> tuple:
    """The kernel's int32 args from shape expressions (or ints), in ``PLUGIN.scalars`` order."""
    _, num_heads, seq_len, head_dim = q_shape_expr
    return (seq_len, head_dim, num_heads, bias_shape_expr[0])


def register() -> None:
    """Register the plugin with TensorRT (idempotent). Needs TensorRT >= 10.9 (``tensorrt.plugin.aot_impl``)
    and Triton at engine build; ``edgekit.targets.tensorrt.device.aot_plugin_problem`` says whether it can."""
    import tensorrt.plugin as trtp

    if PLUGIN.is_registered(trtp):
        return

    @trtp.register(PLUGIN.plugin_id)
    def window_attention_desc(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, bias: trtp.TensorDesc, scale: float, num_heads: int
    ) -> trtp.TensorDesc:
        return q.like()

    @trtp.autotune(PLUGIN.plugin_id)
    def window_attention_autotune(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, bias: trtp.TensorDesc,
        outputs: Tuple[trtp.TensorDesc],
    ) -> List[trtp.AutoTuneCombination]:
        return PLUGIN.autotune(trtp)

    @trtp.aot_impl(PLUGIN.plugin_id)
    def window_attention_aot_impl(
        q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, bias: trtp.TensorDesc, scale: float,
        num_heads: int, outputs: Tuple[trtp.TensorDesc], tactic: int,
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        # num_heads is not read: the launch takes the heads from q's shape; TensorRT passes it all the same
        dtype = tensorrt_aot.triton_dtype(q.dtype)
        seq_len = tensorrt_aot.dim_upper_bound(q.shape, 2)
        head_dim = tensorrt_aot.dim_upper_bound(q.shape, 3)
        config, kernel = compile_kernel(dtype, seq_len, head_dim, tensorrt_aot.plugin_field_value(scale, float),
                                        tensorrt_aot.current_kernel_target())

        batch_windows, heads, seq_len_expr, _ = q.shape_expr
        grid_x, grid_y, _ = grid(config, batch_windows, heads, seq_len_expr, cdiv=trtp.cdiv)
        return PLUGIN.launch(trtp, kernel, grid_x, grid_y, extra_args(q.shape_expr, bias.shape_expr))
