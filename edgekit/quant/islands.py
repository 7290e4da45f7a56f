"""Precision islands: the nodes that stay in higher precision, each with the reason.

Which ops break under reduced precision is known; the defaults below keep them in float so a
quantized model stays close to the fp32 one, and ``--keep-fp`` adds the user's own (node-name
fnmatch patterns, or ``op:<OpType>``). A quantizer excludes island nodes from quantization, and
the manifest lists them with their reasons.

INT8 (every target): LayerNorm, Softmax, attention matmuls (activation x activation), GELU, the
linear-attention normalizer and division, the first layer (stem / patch embed) and the last
(classifier / segmentation head), and fused attention kernels (edgekit's plugin ops, ONNX
Runtime's contrib Attention written by the ONNX Runtime rewrites).
A target's int8 plan may add rules (``Int8Plan.island_rules``). ONNX Runtime adds ``resize``: a linear / cubic
Resize that reads an int8 layer's output, with that layer (its QDQ propagation would interpolate in uint8, a
slow path: int8 SegFormer-B0 at 384 ran 0.90x fp32's speed with it, 1.00x without, scripts/bench_quant.py).
FP16 / BF16: LayerNorm, Softmax and the linear-attention normalizer and division (their sums and
variances overflow fp16's 65504 or lose its 11-bit mantissa); the matmuls run in fp16 fine.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import onnx

from edgekit.config import Precision
from edgekit.errors import UsageError
from edgekit.quant.graph import GraphView, attribute

REASONS = {
    "layernorm": "LayerNorm: per-tensor int8 of the residual stream it normalizes crushes its small channels",
    "softmax": "Softmax: int8 steps of 1/255 zero the small attention weights that sum to most of the mass",
    "attention_matmul": "attention MatMul (activation x activation): both operands have outliers and no per-channel scale",
    "gelu": "GELU: its erf/tanh curve needs float inputs near zero, where int8 steps are coarse",
    "linear_attention": "linear-attention normalizer and division: dividing by a small data-dependent sum amplifies int8 error",
    "stem": "first layer (stem / patch embed): raw pixels with few channels; its error reaches every later layer",
    "head": "last layer (classifier / segmentation head): its error is the output error",
    "plugin": "fused attention kernel (an edgekit plugin op or ONNX Runtime's Attention): softmax and the attention "
              "matmuls inside run in float",
    "resize": "linear Resize after an int8 layer (ONNX Runtime): its QDQ propagation would interpolate in uint8, "
              "a slow path; the Resize and the layer before it run in float",
    "user": "--keep-fp pattern",
    "budget": "kept by the --max-drop budget loop: quantizing it cost the most agreement",
    "recipe": "left in float by the chosen recipe (depthwise convolutions: memory-bound, int8 saves little there "
              "while the quantize/dequantize around them costs; the recipe was measured faster on this runtime)",
}

_NORM_OPS = {"LayerNormalization", "InstanceNormalization", "GroupNormalization", "RMSNormalization",
             "SimplifiedLayerNormalization", "SkipLayerNormalization"}
_SOFTMAX_OPS = {"Softmax", "LogSoftmax"}
_FUSED_ATTENTION_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention",
                        "PackedMultiHeadAttention", "WindowAttention", "LinearAttention"}
# ops a normalizer's divisor is computed with (sum of keys, plus eps, reshaped / sliced)
_DIVISOR_CHAIN = {"Add", "ReduceSum", "Mul", "Pad", "Slice", "Transpose", "Reshape", "Cast", "Sum", "Clip", "Max",
                  "MatMul", "Unsqueeze", "Squeeze", "Expand"}
_INT8_RULES = ("plugin", "layernorm", "softmax", "attention_matmul", "gelu", "linear_attention", "stem", "head")
_FLOAT16_RULES = ("plugin", "layernorm", "softmax", "linear_attention")


@dataclass(frozen=True)
class Island:
    node: str
    op_type: str
    reason: str  # a key of REASONS

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "reason": self.reason}


def default_rules(precision: Precision, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The island rules applied by default at ``precision``, with a target's ``extra`` int8 rules (see the
    module docstring)."""
    if precision is not Precision.INT8:
        return _FLOAT16_RULES
    return _INT8_RULES + tuple(extra)


def find_islands(proto: onnx.ModelProto, extra_rules: tuple[str, ...] = (), precision: Precision = Precision.INT8,
                 keep_fp: tuple[str, ...] = (), default: bool = True) -> list[Island]:
    """Island nodes in graph order, the first matching rule giving the reason; ``extra_rules``: the target's own
    int8 rules (``Int8Plan.island_rules``)."""
    g = GraphView(proto)
    reason: dict[str, str] = {}
    rules = default_rules(precision, extra_rules) if default else ("plugin",)
    for rule in rules:
        for name in _RULES[rule](g):
            reason.setdefault(name, rule)
    for name in match_patterns(proto, keep_fp):
        reason.setdefault(name, "user")
    return [Island(n.name, n.op_type, reason[n.name]) for n in g.nodes if n.name in reason]


def float16_islands(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes a float16 conversion must leave in float32."""
    return [i.node for i in find_islands(proto, (), Precision.FP16)]


def match_patterns(proto: onnx.ModelProto, patterns: tuple[str, ...]) -> list[str]:
    """Node names matched by ``--keep-fp`` patterns; a pattern matching nothing is a usage error."""
    names = []
    for pattern in patterns:
        if pattern.startswith("op:"):
            hits = [n.name for n in proto.graph.node if n.op_type == pattern[3:]]
        else:
            hits = [n.name for n in proto.graph.node if fnmatchcase(n.name, pattern)]
        if not hits:
            raise UsageError(f"--keep-fp {pattern!r} matches no node; patterns match node names (fnmatch, e.g. "
                             f"'*/head/*') or op types ('op:Softmax'); `edgekit quantize --sensitivity` lists blocks")
        names.extend(hits)
    return list(dict.fromkeys(names))


def _plugin(g: GraphView) -> list[str]:
    return [n.name for n in g.nodes if n.domain == "edgekit" or n.op_type in _FUSED_ATTENTION_OPS]


def _layernorm(g: GraphView) -> list[str]:
    names = [n.name for n in g.nodes if n.op_type in _NORM_OPS]
    # decomposed: ReduceMean -> Sub -> (Pow | Mul) -> ReduceMean -> Add(eps) -> Sqrt -> Div
    for n in g.nodes:
        if n.op_type == "ReduceMean" and any(c.op_type == "Sub" for c in g.consumers.get(n.output[0], [])):
            names.extend(_walk(g, n, {"Sub", "Pow", "Mul", "ReduceMean", "Add", "Sqrt", "Reciprocal", "Div"}, 6,
                               forward=True, stop_after={"Div", "Reciprocal"}))
    return names


def _softmax(g: GraphView) -> list[str]:
    return [n.name for n in g.nodes if n.op_type in _SOFTMAX_OPS]


def _attention_matmul(g: GraphView) -> list[str]:
    return [n.name for n in g.nodes if n.op_type in ("MatMul", "Einsum") and len(g.activation_inputs(n)) >= 2]


def _gelu(g: GraphView) -> list[str]:
    names = [n.name for n in g.nodes if n.op_type in ("Gelu", "FastGelu", "BiasGelu")]
    for n in g.nodes:
        if n.op_type in ("Erf", "Tanh"):
            names.append(n.name)
            # x / sqrt(2) (or x * c, or the cubic polynomial of the tanh form) before it
            names.extend(_walk(g, n, {"Div", "Mul", "Add", "Pow"}, 3, forward=False))
            # (1 + erf) * x * 0.5 after it
            names.extend(_walk(g, n, {"Add", "Mul"}, 3, forward=True))
    return names


def _linear_attention(g: GraphView) -> list[str]:
    names = []
    for n in g.nodes:
        if n.op_type == "Div" and len(n.input) > 1 and not g.is_const(n.input[1]) and not g.is_const(n.input[0]):
            names.append(n.name)
            divisor = g.producer.get(n.input[1])
            if divisor is not None and divisor.op_type in _DIVISOR_CHAIN:
                names.append(divisor.name)
                names.extend(_walk(g, divisor, _DIVISOR_CHAIN - {"MatMul"}, 4, forward=False))
    return names


def _stem(g: GraphView) -> list[str]:
    return [n.name for n in g.first_weighted()]


def _head(g: GraphView) -> list[str]:
    return [n.name for n in g.last_weighted()]


def _resize(g: GraphView) -> list[str]:
    names = []
    for n in g.nodes:
        if n.op_type != "Resize" or attribute(n, "mode", b"nearest") == b"nearest":
            continue
        producer = g.producer.get(n.input[0])
        if producer is not None and g.is_weighted(producer) \
                and all(c.op_type == "Resize" for c in g.consumers.get(producer.output[0], [])):
            names += [producer.name, n.name]
    return names


_RULES = {"plugin": _plugin, "layernorm": _layernorm, "softmax": _softmax, "attention_matmul": _attention_matmul,
          "gelu": _gelu, "linear_attention": _linear_attention, "stem": _stem, "head": _head, "resize": _resize}


def _walk(g: GraphView, start: onnx.NodeProto, ops: set[str], depth: int, forward: bool,
          stop_after: set[str] = frozenset()) -> list[str]:
    """Names of nodes of ``ops`` connected to ``start`` within ``depth`` hops along activations."""
    found, frontier = [], [(start, 0)]
    seen = {start.name}
    while frontier:
        node, d = frontier.pop()
        if d >= depth or (node is not start and node.op_type in stop_after):
            continue
        if forward:
            nexts = [c for o in node.output for c in g.consumers.get(o, [])]
        else:
            nexts = [g.producer[i] for i in g.activation_inputs(node) if i in g.producer]
        for m in nexts:
            if m.name in seen or m.op_type not in ops:
                continue
            seen.add(m.name)
            found.append(m.name)
            frontier.append((m, d + 1))
    return found


def depthwise_convs(proto: onnx.ModelProto) -> dict[str, str]:
    """Depthwise Conv nodes (group > 1, one input channel per group) -> op type."""
    weights = {i.name: i for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in weights:
            continue
        group = attribute(n, "group", 1)
        if group > 1 and weights[n.input[1]].dims[1] == 1:
            out[n.name] = n.op_type
    return out


def summarize(islands: list[Island]) -> dict:
    """Manifest form: per reason, its explanation, count and nodes."""
    out: dict[str, dict] = {}
    for isl in islands:
        entry = out.setdefault(isl.reason, {"why": REASONS[isl.reason], "count": 0, "nodes": []})
        entry["count"] += 1
        entry["nodes"].append(isl.node)
    return out
