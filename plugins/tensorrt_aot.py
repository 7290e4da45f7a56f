"""What TensorRT ahead-of-time (AOT) plugins built from Triton kernels share; needs neither TensorRT nor a GPU.

An AOT plugin (``@tensorrt.plugin.aot_impl``, TensorRT >= 10.9) hands TensorRT a kernel name, its PTX,
launch parameters and symbolic int32 "extra args"; TensorRT serialises them into the engine, so the app
needs neither Python nor a plugin ``.so``. TensorRT launches the kernel with (input pointers, extra args,
output pointers), nothing else, which shapes what lives here:

- ``KernelTarget`` / ``kernel_target``: the GPU architecture and PTX ISA version the PTX is written for.
  Never Triton's defaults (the build GPU's architecture, ``sm_90a`` on an H100, and the newest PTX its
  bundled ptxas knows): the lowest architecture the engine promises to run on (``sm_80`` for
  ``--hardware-compatibility ampere+``) and the lowest PTX version that architecture needs, so an older
  driver can still load it. ``building_for`` scopes the target around an engine build;
- ``compile_ptx``: Triton -> PTX for a ``KernelTarget`` (works on a CPU-only machine: Triton ships ptxas),
  with the ABI trimmed to what TensorRT passes (``strip_trailing_params``);
- dtype and dimension helpers that read TensorRT descriptors duck-typed (``.name``, ``.max``), so tests
  can feed them plain Python objects;
- ``plugin_field_value``: undo what TensorRT's ONNX parser does to attributes on their way to fields.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
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


# Lowest PTX ISA version (major * 10 + minor) that can name each architecture, from NVIDIA's PTX ISA release
# notes. Triton compiles every architecture >= 90 with the "a" suffix (sm_90a, sm_100a, ...), which needs the
# version listed. A driver loads PTX up to the version of the CUDA release it ships with (PTX 7.4: CUDA 11.4,
# JetPack 5; 8.2: CUDA 12.2; 8.5: CUDA 12.6, JetPack 6.1/6.2; 8.8: CUDA 12.9; 9.0: CUDA 13.0). Each entry was
# compiled by Triton 3.9 at that version for both plugins and assembled by its ptxas (tests compile sm_80).
# Not listed: sm_101 (Thor under CUDA 12.x; CUDA 13 calls it sm_110), which Triton 3.9's LLVM cannot compile
# these kernels for ("Cannot select: intrinsic redux.sync.fmax").
MIN_PTX_VERSION = {80: 70, 86: 71, 87: 74, 89: 78, 90: 80, 100: 86, 103: 88, 110: 90, 120: 87, 121: 88}
# The architecture AOT kernels are written for under --hardware-compatibility ampere+ (any GPU >= 8.0 JITs it).
AMPERE_PLUS_ARCH = 80


@dataclass(frozen=True)
class KernelTarget:
    """Where AOT kernels run: PTX for ``sm_<arch>`` (``sm_<arch>a`` from 90, as Triton writes it) at PTX ISA
    ``ptx_version`` (e.g. 70 = 7.0). ``reason`` says why this target, for the manifest."""

    arch: int
    ptx_version: int
    reason: str = ""

    @property
    def sm(self) -> str:
        return f"sm_{self.arch}{'a' if self.arch >= 90 else ''}"

    @property
    def ptx(self) -> str:
        return f"{self.ptx_version // 10}.{self.ptx_version % 10}"

    def describe(self) -> str:
        return f"{self.sm}, PTX {self.ptx}"

    def to_dict(self) -> dict:
        return {"arch": self.sm, "ptx_version": self.ptx, "reason": self.reason}


def min_ptx_version(arch: int) -> int:
    """The lowest PTX ISA version that can target ``arch`` (80 -> 70); ValueError for an architecture not listed."""
    try:
        return MIN_PTX_VERSION[int(arch)]
    except KeyError:
        raise ValueError(f"edgekit's plugin kernels have no PTX target for sm_{arch} (they are compiled for "
                         f"{', '.join(f'sm_{a}' for a in MIN_PTX_VERSION)})") from None


def kernel_target(hardware_compatibility: str, compute_capability: str) -> KernelTarget:
    """The target AOT kernels are compiled for, given the engine's hardware compatibility level ("none",
    "ampere+" or "same-cc") and the build GPU's compute capability ("9.0").

    ampere+: sm_80 (the engine may run on any GPU >= 8.0, each JIT-compiles the PTX); otherwise the build
    GPU's architecture, the only one the engine runs on. Always the lowest PTX version that target needs.
    """
    major, _, minor = str(compute_capability).partition(".")
    build_arch = int(major) * 10 + int(minor or 0)
    if hardware_compatibility == "ampere+":
        if build_arch < AMPERE_PLUS_ARCH:
            raise ValueError(f"--hardware-compatibility ampere+ needs a build GPU of compute capability >= 8.0, "
                             f"this one is {compute_capability}")
        arch, why = AMPERE_PLUS_ARCH, "hardware compatibility ampere+: every GPU of compute capability >= 8.0"
    elif hardware_compatibility in ("none", "same-cc"):
        arch, why = build_arch, f"the build GPU's compute capability {compute_capability} ({hardware_compatibility})"
    else:
        raise ValueError(f"unknown hardware compatibility {hardware_compatibility!r}")
    return KernelTarget(arch, min_ptx_version(arch), f"{why}; lowest PTX version for it")


_SCOPED_TARGET: list[KernelTarget] = []  # set only inside building_for(); read by the plugins' aot_impl


@contextlib.contextmanager
def building_for(target: KernelTarget) -> Iterator[KernelTarget]:
    """Scope in which TensorRT's calls to the plugins' ``aot_impl`` compile for ``target``.

    TensorRT calls aot_impl from inside ``build_serialized_network`` with no way to pass it build settings,
    so the engine build wraps that call in this. A plain list, not a ContextVar: TensorRT may call back from
    a thread of its own, which would not see a context variable's value.
    """
    _SCOPED_TARGET.append(target)
    try:
        yield target
    finally:
        _SCOPED_TARGET.pop()


def current_kernel_target() -> KernelTarget:
    """The target scoped by ``building_for``; outside one, the current GPU's architecture at its lowest PTX
    version (what a plain ``register_tensorrt()`` + user-written build gets)."""
    if _SCOPED_TARGET:
        return _SCOPED_TARGET[-1]
    from triton.runtime import driver

    arch = int(driver.active.get_current_target().arch)
    return KernelTarget(arch, min_ptx_version(arch), "no target scoped: the current GPU; lowest PTX version for it")


_PTX_VERSION = re.compile(r"^\s*\.version\s+(\d+)\.(\d+)", re.M)
_PTX_TARGET = re.compile(r"^\s*\.target\s+(sm_\w+)", re.M)


def ptx_header(ptx: str) -> tuple[str, str]:
    """(".version" value, ".target" value) of a PTX module: ("7.0", "sm_80")."""
    version, target = _PTX_VERSION.search(ptx), _PTX_TARGET.search(ptx)
    if version is None or target is None:
        raise ValueError("PTX without a .version or .target directive")
    return f"{version.group(1)}.{version.group(2)}", target.group(1)


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
    num_launch_args: int, target: KernelTarget,
) -> CompiledKernel:
    """Compile the ``@triton.jit`` function ``fn`` to PTX for ``target`` (architecture and PTX version).

    ``signature`` maps every argument (constexprs as "constexpr") to its Triton type, in kernel order;
    ``num_launch_args`` is how many arguments TensorRT passes (inputs + extra args + outputs).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    if not isinstance(fn, JITFunction):  # under TRITON_INTERPRET=1 @triton.jit made an InterpretedFunction
        fn = JITFunction(fn.fn)
    source = ASTSource(fn=fn, signature=dict(signature), constexprs=dict(constexprs))
    compiled = triton.compile(source, target=GPUTarget("cuda", target.arch, 32), options={
        "num_warps": num_warps, "num_stages": num_stages, "ptx_version": target.ptx_version})
    metadata = compiled.metadata
    for scratch in ("global_scratch_size", "profile_scratch_size"):
        if getattr(metadata, scratch, 0):
            raise RuntimeError(f"{metadata.name} needs {scratch}={getattr(metadata, scratch)}: TensorRT AOT cannot pass it")
    ptx = compiled.asm["ptx"]
    if ptx_header(ptx) != (target.ptx, target.sm):  # Triton took the options: the PTX says what we asked for
        raise RuntimeError(f"Triton wrote PTX {ptx_header(ptx)} for {metadata.name}, not {(target.ptx, target.sm)}")
    ptx = strip_trailing_params(ptx, metadata.name, num_launch_args)
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


@dataclass(frozen=True)
class AotPlugin:
    """What every edgekit AOT plugin has in common, from its op schema and its kernel's arguments (names in
    TensorRT's launch order: ``inputs`` pointers, int32 ``scalars``, ``outputs`` pointers, then ``constexprs``).
    A plugin module keeps only what is its own: the decorated ``register`` functions (tensorrt.plugin reads
    their signatures), its constexpr values, extra args and grid."""

    schema: Any  # edgekit.plugins.op_schema.OpSchema
    inputs: tuple[str, ...]
    scalars: tuple[str, ...]
    constexprs: tuple[str, ...]
    outputs: tuple[str, ...] = ("out_ptr",)

    @property
    def plugin_id(self) -> str:
        return f"{self.schema.domain}::{self.schema.name}"

    @property
    def field_kinds(self) -> dict[str, type]:
        """Plugin fields, in registration order: the ONNX attributes of the same names."""
        return {a.name: a.kind for a in self.schema.attributes}

    def plugin_fields(self, node_attributes: Mapping[str, Any]) -> dict:
        """Fields the TensorRT ONNX parser hands the plugin for a node with ``node_attributes``, validated."""
        return self.schema.resolve(**plugin_fields(node_attributes, self.field_kinds))

    def kernel_signature(self, dtype: str) -> dict[str, str]:
        return kernel_signature(self.inputs, self.scalars, self.outputs, dtype, self.constexprs)

    def compile(self, fn, dtype: str, constexprs: Mapping[str, Any], config, target: KernelTarget) -> CompiledKernel:
        """``fn`` as PTX for ``target`` with ``config``'s warps and stages (see :func:`compile_ptx`)."""
        return compile_ptx(fn, self.kernel_signature(dtype), constexprs, num_warps=config.num_warps,
                           num_stages=config.num_stages,
                           num_launch_args=len(self.inputs) + len(self.scalars) + len(self.outputs), target=target)

    def is_registered(self, trtp) -> bool:
        try:
            getattr(getattr(trtp.op, self.schema.domain), self.schema.name)
        except AttributeError:
            return False
        return True

    def autotune(self, trtp) -> list:
        """Every I/O fp32 together or fp16 together, LINEAR (contiguous) layout."""
        return [trtp.AutoTuneCombination(autotune_types(len(self.inputs) + len(self.outputs)), "LINEAR")]

    @staticmethod
    def launch(trtp, kernel: CompiledKernel, grid_x, grid_y, extra_args: Sequence) -> tuple:
        """What an ``aot_impl`` returns: (kernel name, PTX, launch parameters, int32 extra args)."""
        params = trtp.KernelLaunchParams()
        params.grid_x = grid_x
        params.grid_y = grid_y
        params.block_x = kernel.threads_per_block
        params.shared_mem = kernel.shared_mem
        return kernel.name, kernel.ptx, params, trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in extra_args])
