"""A recording fake of TensorRT's builder and runtime API, for edgekit's engine build and runners on machines
without TensorRT.

It behaves where edgekit's correctness depends on it: a version-compatible plan does not deserialize unless
the runtime allows host code (TensorRT refuses the lean runtime such a plan embeds); ``set_timing_cache``
returns what the test asks (False: a cache from another version or GPU); the parser reports how it was fed
(a file, or bytes) and what it saw; ``build_serialized_network`` records the plugin kernel target scoped at
that moment. Names are TensorRT's (tests/plugins/test_tensorrt_plugin_source.py holds edgekit's calls to the
real bindings' names).
"""
from __future__ import annotations

import enum
import types

import onnx


class Recorder:
    def __init__(self):
        self.events: list[tuple] = []
        self.timing_cache_accepted = True
        self.plugin_layer_names: list[str] = []  # layers the parser makes plugin layers of
        self.kernel_target_at_build = "not built"


def fake_tensorrt(version: str = "10.13.3.9", recorder: Recorder | None = None) -> types.ModuleType:
    rec = recorder or Recorder()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.recorder = rec

    class ILogger:
        Severity = enum.IntEnum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE", start=0)

        def __init__(self):
            pass

    class Logger(ILogger):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self, min_severity=None):
            super().__init__()

    trt.ILogger, trt.Logger = ILogger, Logger
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     "STRONGLY_TYPED PREFER_AOT_PYTHON_PLUGINS", start=0)
    trt.BuilderFlag = enum.Enum("BuilderFlag", "VERSION_COMPATIBLE GPU_FALLBACK")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.ProfilingVerbosity = enum.Enum("ProfilingVerbosity", "DETAILED")
    trt.HardwareCompatibilityLevel = enum.Enum("HardwareCompatibilityLevel", "NONE AMPERE_PLUS SAME_COMPUTE_CAPABILITY")
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.LayerType = enum.Enum("LayerType", "PLUGIN_V3 CONVOLUTION")
    trt.LayerInformationFormat = enum.Enum("LayerInformationFormat", "JSON ONELINE")
    trt.TensorIOMode = enum.Enum("TensorIOMode", "INPUT OUTPUT")

    class Layer:
        def __init__(self, name, type_):
            self.name, self.type = name, type_

    class Network:
        def __init__(self, flags):
            self.flags, self.layers, self.inputs = flags, [], []

        num_layers = property(lambda self: len(self.layers))
        num_inputs = property(lambda self: len(self.inputs))

        def get_layer(self, i):
            return self.layers[i]

        def get_input(self, i):
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def _read(self, model: onnx.ModelProto, how: str) -> bool:
            domains = sorted({n.domain for n in model.graph.node})
            rec.events.append(("parse", how, domains))
            for node in model.graph.node:
                plugin = node.domain == "edgekit" and node.op_type in rec.plugin_layer_names
                self.network.layers.append(Layer(node.name, trt.LayerType.PLUGIN_V3 if plugin
                                                 else trt.LayerType.CONVOLUTION))
            return True

        def parse_from_file(self, path):
            return self._read(onnx.load(path), "file")

        def parse(self, data, path=None):
            return self._read(onnx.load_from_string(data), "bytes")

    class Config:
        def __init__(self):
            self.flags, self.hardware_compatibility_level = set(), None

        def set_memory_pool_limit(self, pool, size):
            rec.events.append(("workspace", size))

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, data):
            return types.SimpleNamespace(serialize=lambda: b"cache", data=data)

        def set_timing_cache(self, cache, ignore_mismatch):
            rec.events.append(("set_timing_cache", ignore_mismatch))
            return rec.timing_cache_accepted

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"cache")

    class Builder:
        num_DLA_cores = 0

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            from edgekit.plugins import tensorrt_aot

            rec.kernel_target_at_build = (tensorrt_aot._SCOPED_TARGET[-1] if tensorrt_aot._SCOPED_TARGET else None)
            vc = trt.BuilderFlag.VERSION_COMPATIBLE in config.flags
            return (b"VC-PLAN" if vc else b"PLAN") + b"\0" * 8

    class Engine:
        def __init__(self, plan):
            self.plan, self.num_io_tensors = plan, 0

        def create_engine_inspector(self):
            return types.SimpleNamespace(get_engine_information=lambda fmt: '{"Layers": []}', execution_context=None)

        def create_execution_context(self):
            return types.SimpleNamespace()

    class Runtime:
        def __init__(self, logger):
            self.engine_host_code_allowed, self.DLA_core = False, -1

        def deserialize_cuda_engine(self, plan):
            plan = bytes(plan)
            rec.events.append(("deserialize", plan[:7], self.engine_host_code_allowed, self.DLA_core))
            if plan.startswith(b"VC-PLAN") and not self.engine_host_code_allowed:
                return None  # TensorRT: the plan's lean runtime is host code, not allowed here
            return Engine(plan)

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt
