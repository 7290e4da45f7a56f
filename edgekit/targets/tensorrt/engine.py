"""Build a TensorRT engine from edgekit's TensorRT-flavoured ONNX: the only code here that needs TensorRT to build.

Written against TensorRT's documented Python API (10.x and 11.x): ``Builder``, a strongly typed
``INetworkDefinition`` filled by ``OnnxParser``, an ``IBuilderConfig`` (workspace pool, optimization
profiles, timing cache, DLA, version and hardware compatibility, detailed profiling verbosity) and
``build_serialized_network``. The plan is written exactly as TensorRT returns it.

edgekit's attention nodes are built one of two ways, said in the build facts (``plugins``):

- ``aot``: where TensorRT has ahead-of-time Python plugins (>= 10.9) and Triton is installed, the plugins
  are registered first (``edgekit.plugins.register_tensorrt``), the parser builds the nodes as plugin
  layers, and their kernels are compiled to PTX for the engine's kernel target (``tensorrt_aot.
  kernel_target``: sm_80 for ``ampere+``, else the build GPU; the lowest PTX version that needs) and go
  into the plan;
- ``function-bodies``: elsewhere (JetPack 6's TensorRT 10.3, 10.7, no Triton) the nodes are inlined into
  their ONNX function bodies (standard ops) before parsing, and TensorRT fuses those itself.

A version-compatible plan embeds the lean runtime as host code, which a runtime refuses to run unless
told (``engine_host_code_allowed``): :func:`make_runtime` (``edgekit/engines/trt_runtime.py``, shared with the
engine that runs the plan, :mod:`edgekit.engines.tensorrt`) makes the runtime of the check after the build.

This file is also the build script of ``--onnx-only`` bundles (``build/build_engine.py``): run there,
it loads the bundle's own copy of the plugins, builds ``model.engine`` beside ``model.onnx`` and
rewrites the manifest to describe the engine. So it imports nothing from edgekit at module level but the
logger and runtime maker, which the kit copies beside it (``build/trt_runtime.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

try:
    from edgekit.engines.trt_runtime import make_logger, make_runtime
except ImportError:  # the bundle's build script, without edgekit installed: the kit's copy beside it
    from trt_runtime import make_logger, make_runtime


class BuildError(RuntimeError):
    """The TensorRT build failed; the message carries TensorRT's own errors."""


def write_plan(path: Path, plan) -> str:
    """Write the serialized engine byte for byte (nothing prepended), atomically; returns its sha256."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(plan)  # IHostMemory exposes the buffer protocol: the bytes TensorRT produced
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _configure(trt, builder, network, config, build: dict) -> None:
    if build.get("workspace"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(build["workspace"]))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer info + ONNX node names for the inspector
    dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
    if build.get("profiles") and dynamic:
        profile = builder.create_optimization_profile()
        for p in build["profiles"]:
            profile.set_shape(p["name"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
        config.add_optimization_profile(profile)
    if build.get("version_compatible"):
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    level = build.get("hardware_compatibility", "none")
    if level != "none":
        member = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}[level]
        if not hasattr(trt.HardwareCompatibilityLevel, member):
            raise BuildError(f"TensorRT {trt.__version__} has no hardware compatibility level {member}")
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, member)
    core = build.get("dla_core")
    if core is not None:
        if builder.num_DLA_cores <= core:
            raise BuildError(f"DLA core {core} requested but this device has {builder.num_DLA_cores} DLA cores with "
                             f"TensorRT {trt.__version__} (DLA: Jetson Orin, with TensorRT <= 10.7 or >= 11.4.1)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU


def _network_flags(trt) -> int:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # accepted and implied on TensorRT 11
    if hasattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    return flags


def _plugin_layers(trt, network) -> list[str]:
    kinds = {getattr(trt.LayerType, k) for k in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, k)}
    return [network.get_layer(i).name for i in range(network.num_layers) if network.get_layer(i).type in kinds]


def _environment():
    """(tensorrt_device module, build GPU or None): edgekit's module, or the bundle's copy beside this script."""
    try:
        from edgekit.targets.tensorrt import device as tensorrt_device
    except ImportError:  # the bundle's build script, without edgekit installed
        import tensorrt_device
    gpus, _ = tensorrt_device.probe_gpus()
    return tensorrt_device, (gpus[0] if gpus else None)


def _parse(parser, logger, onnx_path: Path, inline: bool) -> None:
    if inline:  # function bodies: the parser sees standard ops only, whatever it does with local functions
        import onnx

        import edgekit.plugins

        model = edgekit.plugins.inline_functions(onnx.load(str(onnx_path)))
        ok = parser.parse(model.SerializeToString(), str(onnx_path))
    else:
        ok = parser.parse_from_file(str(onnx_path))
    if not ok:
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        why = "; ".join(errors[:3]) or "; ".join(logger.errors[-3:])
        raise BuildError(f"TensorRT's ONNX parser rejected {Path(onnx_path).name}: {why}")


def build_engine(onnx_path: Path, engine_path: Path, build: dict, plugin_nodes: int = 0) -> dict:
    """Parse ``onnx_path``, build with the settings in ``build`` (see TrtOptions.to_dict), write the plan
    to ``engine_path`` and the engine inspector's layer JSON beside it. Returns the build facts."""
    import contextlib

    import tensorrt as trt

    device, gpu = _environment()
    if build.get("hardware_compatibility") == "ampere+" and gpu is not None and gpu.cc < (8, 0):
        raise BuildError(f"--hardware-compatibility ampere+ needs a build GPU of compute capability >= 8.0, this one "
                         f"({gpu.name}) is {gpu.compute_capability}: build without it")
    plugins = {"mode": "none", "reason": "the model has no edgekit plugin nodes"}
    scope = contextlib.nullcontext()
    if plugin_nodes:
        problem, target = device.aot_plugin_problem(trt), None
        if problem is None and gpu is None:
            raise BuildError("no NVIDIA GPU to build the plugin kernels for")
        if problem is None and gpu.cc < (8, 0):
            problem = (f"edgekit's plugin kernels need compute capability >= 8.0 (Triton), this GPU ({gpu.name}) is "
                       f"{gpu.compute_capability}")
        if problem is None:
            from edgekit.plugins import tensorrt_aot

            try:  # an architecture edgekit has no PTX version for (or Triton cannot compile for) gets the bodies
                target = tensorrt_aot.kernel_target(build.get("hardware_compatibility", "none"), gpu.compute_capability)
            except ValueError as e:
                problem = str(e)
        if target is not None:
            import edgekit.plugins

            edgekit.plugins.register_tensorrt()  # before parsing: the parser prefers a registered plugin
            scope = tensorrt_aot.building_for(target)
            plugins = {"mode": "aot", "reason": "ahead-of-time plugins: the kernels' PTX is inside the engine",
                       "kernel_target": target.to_dict()}
        else:
            plugins = {"mode": "function-bodies",
                       "reason": f"{plugin_nodes} edgekit node(s) built from their ONNX function bodies: {problem}"}
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    _parse(parser, logger, onnx_path, inline=plugins["mode"] == "function-bodies")
    plugin_layers = _plugin_layers(trt, network)
    if plugins["mode"] == "aot" and len(plugin_layers) < plugin_nodes:
        raise BuildError(f"only {len(plugin_layers)} of {plugin_nodes} edgekit nodes were built as plugins; the "
                         f"others fell back to their ONNX function bodies (is edgekit's plugin registration current?)")
    config = builder.create_builder_config()
    _configure(trt, builder, network, config, build)
    cache_path = Path(build["timing_cache"]) if build.get("timing_cache") else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cache_bytes), False):  # False: refuse a mismatch
        raise BuildError(f"TensorRT refused the timing cache {cache_path} (made by another TensorRT version or "
                         f"GPU): delete it or pass another --timing-cache")
    with scope:  # TensorRT calls the plugins' aot_impl from inside the build
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError(f"TensorRT could not build the engine: {'; '.join(logger.errors[-3:]) or 'no error logged'}")
    sha256 = write_plan(Path(engine_path), plan)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(cache_path.name + ".tmp")
        tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
        os.replace(tmp, cache_path)
    runtime = make_runtime(trt, logger, bool(build.get("version_compatible")), build.get("dla_core"))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise BuildError(f"TensorRT built the engine but cannot load it: "
                         f"{'; '.join(logger.errors[-3:]) or 'no error logged'}")
    layers = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    Path(engine_path).with_name("layers.json").write_text(layers)
    return {"version": trt.__version__, "sha256": sha256, "compute_capability": gpu.compute_capability if gpu else None,
            "gpu": gpu.name if gpu else None, "machine": platform.machine(), "plugin_layers": plugin_layers,
            "plugins": plugins, "timing_cache": str(cache_path) if cache_path else None}


def runtime_facts(built: dict, build: dict) -> dict:
    """The manifest's ``runtime`` for an engine: what was built, and what a device needs to load it."""
    return {"name": "tensorrt", "version": built["version"], "artifact": "engine",
            "compute_capability": built["compute_capability"], "gpu": built["gpu"], "machine": built["machine"],
            "version_compatible": bool(build.get("version_compatible")),
            "hardware_compatibility": build.get("hardware_compatibility", "none"), "dla_core": build.get("dla_core"),
            "plugin_layers": len(built["plugin_layers"]), "plugins": built["plugins"]}


def runtime_options(build: dict) -> dict:
    """The manifest's ``runtime_options`` for an engine: what a runner sets to open it."""
    return {"artifact": "engine", "profile": 0, "version_compatible": bool(build.get("version_compatible")),
            "dla_core": build.get("dla_core")}


# ---------------------------------------------------------------- the --onnx-only bundle's build script

def _load_bundle_plugins(bundle: Path) -> None:
    """Make ``edgekit.plugins`` the bundle's copy (the sources whose hashes the manifest records)."""
    import importlib.util
    import types

    # by name, not an import statement: inside edgekit the package is always imported already, so this runs only
    # as the bundle's build script, where edgekit may or may not be installed
    if "edgekit" not in sys.modules:
        try:
            importlib.import_module("edgekit")
        except ImportError:
            sys.modules["edgekit"] = types.ModuleType("edgekit")
            sys.modules["edgekit"].__path__ = []
    folder = bundle / "plugins"
    spec = importlib.util.spec_from_file_location("edgekit.plugins", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["edgekit.plugins"] = module
    spec.loader.exec_module(module)


def finish_bundle(bundle: Path, built: dict, build: dict) -> dict:
    """Rewrite the bundle's manifest to describe the engine just built (the ONNX stays, as the source)."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    entries = [{"path": name, "sha256": hashlib.sha256((bundle / name).read_bytes()).hexdigest(),
                "bytes": (bundle / name).stat().st_size} for name in ("model.engine", "layers.json")]
    kept = [f for f in manifest["files"] if f["path"] not in ("model.engine", "layers.json")]
    manifest["files"] = entries + kept
    manifest["runtime"] = runtime_facts(built, build)
    manifest["runtime_options"] = runtime_options(build)
    parity = manifest.setdefault("parity", {})
    parity["engine"] = {"measured": False, "reason": "engine built on the device by build/build_engine.py; the "
                        "parity figures above are of the TensorRT-flavoured ONNX in ONNX Runtime"}
    tmp = path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return manifest


def main(argv: list[str] | None = None) -> int:
    import argparse

    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description="Build model.engine from this bundle's TensorRT-flavoured ONNX.")
    ap.add_argument("--bundle", type=Path, default=here.parent, help="bundle directory [default: this script's parent]")
    ap.add_argument("--timing-cache", type=Path, default=None, help="timing cache file (read, then updated)")
    args = ap.parse_args(argv)
    bundle = args.bundle.resolve()
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError) as e:
        print(f"error: TensorRT >= 10.3 with its ONNX parser is needed to build the engine ({e.__class__.__name__}: "
              f"{str(e).strip().splitlines()[0] if str(e).strip() else 'not importable'}): pip install tensorrt, "
              f"or run trtexec.sh", file=sys.stderr)
        return 1
    build = json.loads((bundle / "build" / "config.json").read_text())
    if args.timing_cache:
        build["timing_cache"] = str(args.timing_cache)
    sys.path.insert(0, str(here))  # tensorrt_device.py
    if build.get("plugin_nodes"):
        _load_bundle_plugins(bundle)
        from edgekit.plugins import plugin_hashes

        recorded = {p["name"]: p["sha256"] for p in json.loads((bundle / "manifest.json").read_text())["plugins"]}
        changed = [n for n, h in plugin_hashes().items() if n in recorded and recorded[n] != h]
        if changed:
            print(f"error: plugins/{', '.join(changed)} differ from the sources the bundle was checked with",
                  file=sys.stderr)
            return 1
    try:
        built = build_engine(bundle / "model.onnx", bundle / "model.engine", build, build.get("plugin_nodes", 0))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finish_bundle(bundle, built, build)
    print(f"built {bundle / 'model.engine'} with TensorRT {built['version']} for compute capability "
          f"{built['compute_capability']} ({built['gpu']}); {len(built['plugin_layers'])} plugin layer(s); "
          f"{built['plugins']['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
