"""Can this machine run that engine? The manifest's build facts against the device, each mismatch said plainly.

TensorRT refuses a plan file from another version with a bare "version tag does not match" (or
"the engine plan file is not compatible with this version of TensorRT"), and one built for another
GPU with errors that do not name the GPU. The rules, from TensorRT's documentation:

- version: an engine loads only in the TensorRT version that built it (major, minor, patch and build),
  unless it was built version-compatible (``BuilderFlag.VERSION_COMPATIBLE``): then it runs on that
  version or a later one of the same major, and across exactly two major boundaries, 8 -> 10 and
  10 -> 11 (an engine built version-compatible with TensorRT 10 runs on TensorRT 11; one built with 11
  never runs on 10, one built with 8 never on 11). The runtime must allow the host code such an engine
  carries (``engine_host_code_allowed``), which edgekit's runners do;
- GPU: an engine runs on GPUs of the compute capability it was built on, unless built with a hardware
  compatibility level: ``ampere+`` (any compute capability >= 8.0) or ``same-cc`` (the same compute
  capability, another GPU model);
- platform: the CPU architecture and OS it was built on (x86_64 and aarch64 plans do not mix);
- DLA: an engine for DLA core n needs a device with more than n cores.

Plugins need nothing at run time: their ahead-of-time kernels are inside the engine, as PTX for the
architecture the hardware compatibility level promises (``edgekit.plugins.tensorrt_aot.kernel_target``).
"""
from __future__ import annotations

from edgekit.targets.tensorrt.device import INSTALL, TrtEnvironment

# (built major, runtime major) pairs a version-compatible engine crosses, from TensorRT's support matrix.
CROSS_MAJOR = frozenset({(8, 10), (10, 11)})


def _version(v: str) -> tuple[int, ...]:
    """"10.13.3.9" -> (10, 13, 3, 9); stops at the first part without digits."""
    out = []
    for part in str(v).split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def same_release(built: str, here: str) -> bool:
    """Whether a plain (not version-compatible) plan built by ``built`` loads in ``here``: every component
    both name must match (a version without its build number, as the C++ library reports it, matches any)."""
    b, h = _version(built), _version(here)
    n = min(len(b), len(h))
    return n >= 1 and b[:n] == h[:n]


def version_compatible_runs(built: str, here: str) -> bool:
    """Whether an engine built version-compatible by TensorRT ``built`` runs on TensorRT ``here``."""
    b, h = _version(built), _version(here)
    n = min(len(b), len(h))
    if n == 0 or h[:n] < b[:n]:  # older than the builder (compared on the components both name)
        return False
    return b[0] == h[0] or (b[0], h[0]) in CROSS_MAJOR


def version_compatible_targets(built: str) -> str:
    """Where an engine built version-compatible by ``built`` runs, in words: "TensorRT 10.13.3.9 or a later
    10.x, or TensorRT 11.x"."""
    major = _version(built)[0] if _version(built) else 0
    later = sorted(h for b, h in CROSS_MAJOR if b == major)
    return f"TensorRT {built} or a later {major}.x" + "".join(f", or TensorRT {m}.x" for m in later)


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
            if not version_compatible_runs(built, here):
                problems.append(f"the engine was built version-compatible with TensorRT {built} and TensorRT {here} "
                                f"is installed; it runs on {version_compatible_targets(built)}: install one, or "
                                f"rebuild the engine here")
        elif not same_release(built, here):
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
