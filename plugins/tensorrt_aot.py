"""What TensorRT ahead-of-time (AOT) plugins built from Triton kernels share; needs neither TensorRT nor a GPU.

An AOT plugin (``@tensorrt.plugin.aot_impl``) hands TensorRT a kernel name, its PTX, launch parameters and
symbolic int32 "extra args"; TensorRT serialises them into the engine, so the app needs neither Python nor
a plugin ``.so``. TensorRT launches the kernel with (input pointers, extra args, output pointers), nothing
else, which shapes what lives here:

- ``compile_ptx``: Triton -> PTX for a given GPU target (works on a CPU-only machine: Triton ships ptxas),
  with the ABI trimmed to what TensorRT passes (``strip_trailing_params``);
- dtype and dimension helpers that read TensorRT descriptors duck-typed (``.name``, ``.max``), so tests
  can feed them plain Python objects;
- ``plugin_field_value``: undo what TensorRT's ONNX parser does to attributes on their way to fields.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# trt.DataType member names -> Triton pointer element types
TRT_TO_TRITON_DTYPE = {"FLOAT": "fp32", "HALF": "fp16"}
# tensorrt.plugin.AutoTuneCombination type names, in the same order
AUTOTUNE_TYPES = ("FP32", "FP16")


def triton_dtype(trt_dtype: Any) -> str:
    """``trt.float32`` -> "fp32", ``trt.float16`` -> "fp16" (matched on the enum member's name)."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).rsplit(".", 1)[-1]
    try:
        return TRT_TO_TRITON_DTYPE[name]
    except KeyError:
        raise TypeError(f"edgekit plugins run fp32 or fp16 I/O, not {name}") from None


def autotune_types(num_io: int) -> str:
    """Type string where every input and output is fp32 together or fp16 together: "FP32|FP16, FP32|FP16, ..."."""
    return ", ".join(["|".join(AUTOTUNE_TYPES)] * num_io)


def dim_upper_bound(shape: Any, axis: int) -> int:
    """A dimension of a ``tensorrt.plugin.Shape``: its value, or its profile maximum when it is dynamic (-1)."""
    value = int(shape[axis])
    return value if value >= 0 else int(shape.max[axis])


def plugin_field_value(value: Any, kind: type) -> Any:
    """A plugin field as TensorRT's ONNX parser delivers it, converted back to the attribute's Python value.

    FLOAT/INT attributes arrive as 1-element float32/int32 arrays (already unwrapped by ``tensorrt.plugin``),
    STRING attributes as bytes with the parser's trailing NUL: ``b"relu\\x00"`` -> ``"relu"``.
    """
    if kind is str:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8")
        return str(value).rstrip("\x00")
    if hasattr(value, "item"):
        value = value.item() if getattr(value, "size", 1) == 1 else value
    return kind(value)


def plugin_fields(node_attributes: Mapping[str, Any], field_kinds: Mapping[str, type]) -> dict[str, Any]:
    """Fields TensorRT's parser builds from a node: attributes named like a field, nothing else.

    Routing attributes (``plugin_namespace``, ``aot``) and unknown ones are dropped, as the parser does;
    a missing field raises, because a Python plugin has no defaults and would fail at engine build.
    """
    missing = [name for name in field_kinds if name not in node_attributes]
    if missing:
        raise ValueError(f"node lacks plugin field attribute(s) {missing}")
    return {name: plugin_field_value(node_attributes[name], kind) for name, kind in field_kinds.items()}


@dataclass(frozen=True)
class CompiledKernel:
    name: str
    ptx: str
    num_warps: int
    shared_mem: int  # bytes of shared memory per block

    @property
    def threads_per_block(self) -> int:
        return self.num_warps * 32


_ENTRY = re.compile(r"\.entry\s+(?P<name>[\w$]+)\s*\((?P<params>[^)]*)\)", re.S)


def entry_params(ptx: str, kernel_name: str) -> list[str]:
    """Declared parameters of ``.entry kernel_name(...)`` in ``ptx``."""
    for match in _ENTRY.finditer(ptx):
        if match.group("name") == kernel_name:
            return [p.strip() for p in match.group("params").split(",") if p.strip()]
    raise ValueError(f"no .entry {kernel_name} in the PTX")


def strip_trailing_params(ptx: str, kernel_name: str, keep: int) -> str:
    """Drop the parameters after the first ``keep`` from the kernel's PTX signature.

    Triton >= 3.3 appends ``global_scratch`` and ``profile_scratch`` pointers to every kernel; TensorRT's
    AOT launcher passes only (inputs, extra args, outputs), and ``cuLaunchKernel`` reads one pointer per
    declared parameter, so the PTX must declare exactly those. Only parameters the body never reads may go.
    """
    for match in _ENTRY.finditer(ptx):
        if match.group("name") != kernel_name:
            continue
        params = [p.strip() for p in match.group("params").split(",") if p.strip()]
        if len(params) < keep:
            raise ValueError(f"{kernel_name} declares {len(params)} parameters, fewer than the {keep} TensorRT passes")
        body = ptx[match.end():]
        for dropped in params[keep:]:
            param_name = dropped.split()[-1]
            if re.search(rf"\b{re.escape(param_name)}\b", body):
                raise ValueError(f"{kernel_name}: parameter {param_name} is used by the kernel and cannot be dropped")
        signature = f".entry {kernel_name}(\n\t" + ",\n\t".join(params[:keep]) + "\n)"
        return ptx[: match.start()] + signature + ptx[match.end():]
    raise ValueError(f"no .entry {kernel_name} in the PTX")


def compile_ptx(
    fn, signature: Mapping[str, str], constexprs: Mapping[str, Any], *, num_warps: int, num_stages: int,
    num_launch_args: int, target: Any = None,
) -> CompiledKernel:
    """Compile the ``@triton.jit`` function ``fn`` to PTX for ``target`` (default: the current GPU).

    ``signature`` maps every argument (constexprs as "constexpr") to its Triton type, in kernel order;
    ``num_launch_args`` is how many arguments TensorRT passes (inputs + extra args + outputs).
    """
    import triton
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    if not isinstance(fn, JITFunction):  # under TRITON_INTERPRET=1 @triton.jit made an InterpretedFunction
        fn = JITFunction(fn.fn)
    source = ASTSource(fn=fn, signature=dict(signature), constexprs=dict(constexprs))
    compiled = triton.compile(source, target=target, options={"num_warps": num_warps, "num_stages": num_stages})
    metadata = compiled.metadata
    for scratch in ("global_scratch_size", "profile_scratch_size"):
        if getattr(metadata, scratch, 0):
            raise RuntimeError(f"{metadata.name} needs {scratch}={getattr(metadata, scratch)}: TensorRT AOT cannot pass it")
    ptx = strip_trailing_params(compiled.asm["ptx"], metadata.name, num_launch_args)
    return CompiledKernel(name=metadata.name, ptx=ptx, num_warps=metadata.num_warps, shared_mem=metadata.shared)


def kernel_signature(
    inputs: Sequence[str], scalars: Sequence[str], outputs: Sequence[str], dtype: str, constexprs: Sequence[str]
) -> dict[str, str]:
    """Triton signature in TensorRT's launch order: input pointers, int32 scalars, output pointers, constexprs."""
    signature = {name: f"*{dtype}" for name in inputs}
    signature.update({name: "i32" for name in scalars})
    signature.update({name: f"*{dtype}" for name in outputs})
    signature.update({name: "constexpr" for name in constexprs})
    return signature
