"""What every edgekit plugin op declares: its tensors, its attributes, and how a node must look.

One ``OpSchema`` per op (``<op>/schema.py``) is the single source of truth that the torch export, the ONNX
function body, the Triton launcher and the TensorRT registration all read, so an attribute name or a
default can only be spelled once.

ONNX node vs TensorRT plugin fields: TensorRT's ONNX parser (onnx-tensorrt ``FallbackPluginImporter``)
looks a node up in the plugin registry by ``op_type`` + string attribute ``plugin_namespace`` (+ optional
``plugin_version``, default "1"); the node's domain is not consulted. It then copies each node attribute
whose name equals one of the creator's field names into a plugin field (FLOAT -> FLOAT32, INT -> INT32,
STRING -> CHAR with a trailing NUL) and ignores the rest. An ``aot`` INT attribute picks the plugin's
ahead-of-time implementation. Since TensorRT 10.7 a registered plugin wins over a model-local function of the
same name, so the same node runs as a plugin in TensorRT and as its function body everywhere else.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DOMAIN = "edgekit"
DOMAIN_VERSION = 1
# Opset the ONNX function bodies are written against (Softmax-13, ReduceSum-13, CastLike-15).
MIN_ONNX_OPSET = 17

# Node attributes that only route the node to the TensorRT plugin; they are not op attributes and the
# plugin does not receive them as fields (the parser consumes them).
TENSORRT_ROUTING_ATTRIBUTES: Mapping[str, Any] = {"plugin_namespace": DOMAIN, "aot": 1}

_ONNX_SUFFIX = {float: "f", int: "i", str: "s"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    doc: str


@dataclass(frozen=True)
class AttributeSpec:
    """One op attribute. ``default`` None means required; ``check`` returns why a value is invalid, or None."""

    name: str
    kind: type  # float, int or str: the ONNX attribute type and the TensorRT plugin field type
    doc: str
    default: Any = None
    check: Callable[[Any], str | None] | None = None

    def coerce(self, value: Any) -> Any:
        if value is None:
            if self.default is None:
                raise ValueError(f"attribute {self.name!r} is required")
            value = self.default
        if self.kind is float:
            value = float(value)
        elif self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"attribute {self.name!r} must be an integer, got {value!r}")
            value = int(value)
        elif self.kind is str:
            value = str(value)
        if self.check is not None and (why := self.check(value)) is not None:
            raise ValueError(f"attribute {self.name}={value!r}: {why}")
        return value


@dataclass(frozen=True)
class OpSchema:
    """An op in domain ``edgekit``: tensors, attributes and the shape rule ``output_shape(*input_shapes)``."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attributes: tuple[AttributeSpec, ...]
    output_shape: Callable[..., tuple[int, ...]]
    doc: str = ""
    domain: str = DOMAIN
    version: int = DOMAIN_VERSION
    routing: Mapping[str, Any] = field(default_factory=lambda: dict(TENSORRT_ROUTING_ATTRIBUTES))

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def resolve(self, **given: Any) -> dict[str, Any]:
        """Op attributes with defaults filled in, coerced to their kind and checked. Unknown names raise."""
        unknown = set(given) - set(self.attribute_names)
        if unknown:
            raise ValueError(f"{self.name}: unknown attribute(s) {sorted(unknown)}; known: {self.attribute_names}")
        return {a.name: a.coerce(given.get(a.name)) for a in self.attributes}

    def node_attributes(self, **given: Any) -> dict[str, Any]:
        """Every attribute the ONNX node carries: the op's (resolved) plus the TensorRT routing ones."""
        return {**self.resolve(**given), **self.routing}

    def function_attribute_names(self) -> list[str]:
        """Attribute names the ONNX FunctionProto declares: all a node may carry, so checkers accept them."""
        return [*self.attribute_names, *self.routing]

    def onnx_opschema(self):
        """An ``onnx.defs.OpSchema`` for this op (not registered globally): what onnxscript needs to emit it."""
        from onnx.defs import OpSchema as _OnnxOpSchema

        attr_type = {float: _OnnxOpSchema.AttrType.FLOAT, int: _OnnxOpSchema.AttrType.INT, str: _OnnxOpSchema.AttrType.STRING}
        attributes = [
            _OnnxOpSchema.Attribute(a.name, attr_type[a.kind], a.doc, required=a.default is None) for a in self.attributes
        ] + [
            _OnnxOpSchema.Attribute(name, attr_type[type(value)], "TensorRT parser routing", required=False)
            for name, value in self.routing.items()
        ]
        return _OnnxOpSchema(
            self.name, self.domain, self.version, self.doc,
            inputs=[_OnnxOpSchema.FormalParameter(t.name, "T", t.doc) for t in self.inputs],
            outputs=[_OnnxOpSchema.FormalParameter(t.name, "T", t.doc) for t in self.outputs],
            type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "fp32 or fp16, the same for all")],
            attributes=attributes,
        )


def positive_finite(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


def at_least(minimum: float, why: str = "") -> Callable[[float], str | None]:
    # ONNX stores float attributes as float32: 1e-6 comes back as 9.99999997e-7 and must still pass.
    floor = struct.unpack("f", struct.pack("f", minimum))[0]

    def check(value: float) -> str | None:
        if not math.isfinite(value) or value < floor:
            return f"must be finite and >= {minimum:g}" + (f" ({why})" if why else "")
        return None

    return check


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {choices}"

    return check


def shape_error(op: str, message: str, **shapes: tuple[int, ...]) -> ValueError:
    described = ", ".join(f"{k}={tuple(v)}" for k, v in shapes.items())
    return ValueError(f"{op}: {message} (got {described})")


def torchscript_attribute_kwargs(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``{"scale": 0.1, "plugin_namespace": "edgekit"}`` -> ``{"scale_f": 0.1, "plugin_namespace_s": "edgekit"}``."""
    return {f"{name}_{_ONNX_SUFFIX[type(value)]}": value for name, value in attributes.items()}
