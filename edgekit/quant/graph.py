"""Read-only views of an ONNX graph that quantization needs: producers, consumers, constants, blocks."""
from __future__ import annotations

from collections import defaultdict
from functools import cached_property

import onnx
import onnx.helper

WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of ``node``'s attribute ``name`` (int, float, bytes, ...), or ``default`` when it is not set."""
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


class GraphView:
    """Producer / consumer maps and constant folding knowledge of ``proto.graph`` (not modified)."""

    def __init__(self, proto: onnx.ModelProto):
        self.proto = proto
        self.nodes = list(proto.graph.node)
        self.producer: dict[str, onnx.NodeProto] = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.inputs = [i.name for i in proto.graph.input if i.name not in self.initializers]
        self.outputs = [o.name for o in proto.graph.output]

    @cached_property
    def initializers(self) -> set[str]:
        return {i.name for i in self.proto.graph.initializer}

    @cached_property
    def constants(self) -> set[str]:
        """Tensors computable without the graph input (initializers, Constant nodes and what they feed)."""
        const = set(self.initializers)
        for n in self.nodes:  # nodes are topologically sorted in a valid ONNX graph
            if n.op_type == "Constant" or (n.input and all((not i) or i in const for i in n.input)):
                const.update(o for o in n.output if o)
        return const

    def is_const(self, tensor: str) -> bool:
        return tensor in self.constants

    def activation_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [i for i in node.input if i and not self.is_const(i)]

    def is_weighted(self, node: onnx.NodeProto) -> bool:
        """A layer with a constant weight: Conv, Gemm, MatMul with one constant operand."""
        return node.op_type in WEIGHTED_OPS and len(node.input) > 1 and len(self.activation_inputs(node)) == 1

    def first_weighted(self) -> list[onnx.NodeProto]:
        """The weighted layers reached first from the graph inputs (the stem / patch embedding)."""
        return self._reach(self.inputs, forward=True)

    def last_weighted(self) -> list[onnx.NodeProto]:
        """The weighted layers reached first walking back from the graph outputs (classifier / seg head)."""
        return self._reach(self.outputs, forward=False)

    def _reach(self, start: list[str], forward: bool) -> list[onnx.NodeProto]:
        found, seen, frontier = [], set(), list(start)
        while frontier:
            tensor = frontier.pop()
            nexts = self.consumers.get(tensor, []) if forward else [self.producer[tensor]] if tensor in self.producer else []
            for n in nexts:
                if n.name in seen:
                    continue
                seen.add(n.name)
                if self.is_weighted(n):
                    found.append(n)
                else:
                    frontier.extend(n.output if forward else self.activation_inputs(n))
        return found


def block_of(node_name: str, depth: int) -> str:
    """The module path prefix of a TorchScript-exported node name: ``/stages/stages.1/blocks/blocks.0/attn/MatMul``
    at depth 4 -> ``/stages/stages.1/blocks/blocks.0``."""
    parts = [p for p in node_name.split("/") if p]
    return "/" + "/".join(parts[:-1][:depth]) if len(parts) > 1 else node_name
