"""The ``--onnx-only`` bundle: everything needed to build the engine on the device, and nothing claimed about it.

Files written (paths relative to the bundle):

- ``model.onnx``: the TensorRT-flavoured ONNX (checked here; run here through ONNX Runtime for parity);
- ``plugins/``: edgekit's plugin package as checked here (the sources whose sha256 the manifest
  records): registration, Triton kernels compiled ahead of time at engine build;
- ``build/build_engine.py`` (+ ``build/tensorrt_device.py``, ``build/trt_runtime.py``, ``build/config.json``): builds
  ``model.engine`` and rewrites the manifest for the engine; with TensorRT >= 10.9 and Triton the plugins
  are registered (the attention nodes become AOT plugin layers), with older TensorRT (JetPack 6's 10.3)
  the nodes are built from their ONNX function bodies, and the manifest says which;
- ``trtexec.sh``: the same build with plain ``trtexec`` (no Python: the attention nodes are built from
  their ONNX function bodies, TensorRT's own fusions apply), then a profiling run of the engine.
"""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from edgekit.targets.tensorrt.options import TrtOptions
from edgekit.targets.tensorrt.profiles import ShapeProfile

ONNX_FILE = "model.onnx"
ENGINE_FILE = "model.engine"
BUILD_DIR = "build"
PLUGIN_DIR = "plugins"
_HW = {"ampere+": "ampere+", "same-cc": "sameComputeCapability"}


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def trtexec_build_args(options: TrtOptions, profiles: tuple[ShapeProfile, ...], onnx: str = ONNX_FILE,
                       engine: str = ENGINE_FILE) -> list[str]:
    """``trtexec`` arguments for the build edgekit does (strongly typed, same profile, pools and flags)."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", "--stronglyTyped", "--profilingVerbosity=detailed"]
    dynamic = [p for p in profiles if not p.is_fixed]
    for flag, attr in (("--minShapes", "min"), ("--optShapes", "opt"), ("--maxShapes", "max")):
        if dynamic:
            args.append(f"{flag}=" + ",".join(f"{p.name}:{_shape(getattr(p, attr))}" for p in dynamic))
    if options.workspace:
        args.append(f"--memPoolSize=workspace:{options.workspace / 2**20:g}M")
    if options.timing_cache:
        args.append(f"--timingCacheFile={options.timing_cache}")
    if options.dla_core is not None:
        args += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    if options.version_compatible:
        args.append("--versionCompatible")
    if options.hardware_compatibility.value != "none":
        args.append(f"--hardwareCompatibilityLevel={_HW[options.hardware_compatibility.value]}")
    return args


def trtexec_profile_args(profiles: tuple[ShapeProfile, ...], options: TrtOptions, engine: str = ENGINE_FILE
                         ) -> list[str]:
    """Time the engine layer by layer; layers.json + profile.json map back to ONNX nodes
    (``edgekit.targets.tensorrt.layers``). A version-compatible engine needs ``--versionCompatible`` to load
    (trtexec then allows the lean runtime it embeds as host code), a DLA engine its ``--useDLACore``."""
    args = ["trtexec", f"--loadEngine={engine}", "--dumpProfile", "--separateProfileRun",
            "--exportLayerInfo=layers.json", "--exportProfile=profile.json"]
    if options.version_compatible:
        args.append("--versionCompatible")
    if options.dla_core is not None:
        args.append(f"--useDLACore={options.dla_core}")
    dynamic = [p for p in profiles if not p.is_fixed]
    if dynamic:
        args.append("--shapes=" + ",".join(f"{p.name}:{_shape(p.opt)}" for p in dynamic))
    return args


def command_line(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def trtexec_script(options: TrtOptions, profiles: tuple[ShapeProfile, ...], plugin_ops: list[str]) -> str:
    note = ("# The edgekit nodes (" + ", ".join(plugin_ops) + ") build here from their ONNX function bodies:\n"
            "# trtexec cannot register Python plugins. For edgekit's ahead-of-time plugin kernels run\n"
            "#   python build/build_engine.py\n" if plugin_ops else "")
    return ("#!/bin/sh\n# Build the TensorRT engine of this bundle on the device, then profile it layer by layer.\n"
            + note + "set -e\ncd \"$(dirname \"$0\")\"\n"
            + command_line(trtexec_build_args(options, profiles)) + "\n"
            + command_line(trtexec_profile_args(profiles, options)) + "\n")


def write_onnx_only(out_dir: Path, model_bytes: bytes, options: TrtOptions, profiles: tuple[ShapeProfile, ...],
                    plugin_ops: list[str], plugin_nodes: int) -> list[str]:
    """Write the build kit into ``out_dir``; returns the written files, ``model.onnx`` first."""
    from edgekit.engines import trt_runtime
    from edgekit.targets.tensorrt import device as tensorrt_device
    from edgekit.targets.tensorrt import engine as tensorrt_engine

    (out_dir / ONNX_FILE).write_bytes(model_bytes)
    files = [ONNX_FILE]
    build = out_dir / BUILD_DIR
    build.mkdir()
    for module, name in ((tensorrt_engine, "build_engine.py"), (tensorrt_device, "tensorrt_device.py"),
                         (trt_runtime, "trt_runtime.py")):
        shutil.copyfile(module.__file__, build / name)
        files.append(f"{BUILD_DIR}/{name}")
    config = {**options.to_dict(), "profiles": [p.to_dict() for p in profiles], "plugin_nodes": plugin_nodes,
              "plugins": plugin_ops, "timing_cache": str(options.timing_cache) if options.timing_cache else None}
    (build / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    files.append(f"{BUILD_DIR}/config.json")
    script = out_dir / "trtexec.sh"
    script.write_text(trtexec_script(options, profiles, plugin_ops))
    script.chmod(0o755)
    files.append("trtexec.sh")
    if plugin_ops:
        files += copy_plugin_library(out_dir / PLUGIN_DIR)
    return files


def copy_plugin_library(dest: Path) -> list[str]:
    """Copy edgekit's plugin package (sources and READMEs, no tests or caches) to ``dest``."""
    import edgekit.plugins

    src = Path(edgekit.plugins.__file__).resolve().parent
    written = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".py", ".md") or "__pycache__" in path.parts:
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(f"{dest.name}/{path.relative_to(src).as_posix()}")
    return written
