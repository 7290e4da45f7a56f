"""Can this machine run that engine? The manifest's build facts against the device, each mismatch said plainly.

TensorRT refuses a plan file from another version with a bare "version tag does not match" (or
"the engine plan file is not compatible with this version of TensorRT"), and one built for another
GPU with errors that do not name the GPU. The rules, from TensorRT's documentation:

- version: an engine loads only in the TensorRT version that built it, unless it was built
  version-compatible (``BuilderFlag.VERSION_COMPATIBLE``), which then runs on that version or a later one
  of the same major;
- GPU: an engine runs on GPUs of the compute capability it was built on, unless built with a hardware
  compatibility level: ``ampere+`` (any compute capability >= 8.0) or ``same-cc`` (the same compute
  capability, another GPU model);
- platform: the CPU architecture and OS it was built on (x86_64 and aarch64 plans do not mix);
- DLA: an engine for DLA core n needs a device with more than n cores.

Plugins need nothing at run time: their ahead-of-time kernels are inside the engine.
"""
from __future__ import annotations

from edgekit.targets.tensorrt_device import INSTALL, TrtEnvironment


def _version(v: str) -> tuple[int, ...]:
    out = []
    for part in str(v).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def _cc(v: str) -> tuple[int, int]:
    major, _, minor = str(v).partition(".")
    return int(major or 0), int(minor or 0)


def engine_mismatches(runtime: dict, env: TrtEnvironment, dla_cores: int | None = None) -> list[str]:
    """Reasons ``env`` cannot run the engine whose build facts are ``runtime`` (manifest["runtime"]);
    empty when it can. ``dla_cores``: DLA cores of this device (None: unknown, not checked)."""
    if runtime.get("artifact") == "onnx":
        return ["this bundle holds the TensorRT-flavoured ONNX (exported with --onnx-only), not an engine: build "
                "it on the device with `python build/build_engine.py` (edgekit's plugin kernels) or `sh trtexec.sh`, "
                "then load the bundle there"]
    problems = []
    if env.tensorrt is None:
        problems.append(f"TensorRT is not usable here ({env.tensorrt_problem}): {INSTALL} on the device")
    if env.gpu is None:
        problems.append(f"no NVIDIA GPU here ({env.gpu_problem}); TensorRT engines run only on NVIDIA GPUs")
    built_machine = runtime.get("machine")
    if built_machine and built_machine != env.machine:
        problems.append(f"the engine was built on {built_machine} and this machine is {env.machine}: TensorRT plan "
                        f"files are specific to the platform that built them; rebuild it here")
    built, here = runtime.get("version"), env.tensorrt
    if built and here:
        if runtime.get("version_compatible"):
            if _version(here)[0] != _version(built)[0] or _version(here) < _version(built):
                problems.append(f"the engine was built version-compatible with TensorRT {built} and TensorRT {here} "
                                f"is installed; a version-compatible engine runs on TensorRT {built} or a later "
                                f"{_version(built)[0]}.x: install one, or rebuild the engine here")
        elif _version(here) != _version(built):
            problems.append(f"the engine was built with TensorRT {built} and TensorRT {here} is installed; a plan "
                            f"file loads only in the version that built it (TensorRT's \"version tag does not "
                            f"match\"): install TensorRT {built}, rebuild the engine here, or export with "
                            f"--version-compatible")
    built_cc, gpu = runtime.get("compute_capability"), env.gpu
    if built_cc and gpu is not None:
        level = runtime.get("hardware_compatibility", "none")
        here_desc = f"this GPU ({gpu.name}) is compute capability {gpu.compute_capability}"
        if level == "ampere+":
            if gpu.cc < (8, 0):
                problems.append(f"the engine was built for Ampere and later GPUs (--hardware-compatibility "
                                f"ampere+, compute capability >= 8.0) and {here_desc}")
        elif gpu.cc != _cc(built_cc):
            built_gpu = f" ({runtime['gpu']})" if runtime.get("gpu") else ""
            hint = "" if level == "same-cc" else "; rebuild it here, or export with --hardware-compatibility ampere+"
            problems.append(f"the engine was built for compute capability {built_cc}{built_gpu} and {here_desc}{hint}")
    core = runtime.get("dla_core")
    if core is not None and dla_cores is not None and core >= dla_cores:
        problems.append(f"the engine runs on DLA core {core} and this device has "
                        f"{dla_cores or 'no'} DLA core{'s' if dla_cores != 1 else ''}")
    return problems
