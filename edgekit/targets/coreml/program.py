"""Inspect a converted ML Program (its protobuf spec, readable on any OS): ops, ranks, compute precision.

CoreML's ML Program allows tensors of rank <= 5 and runs each op in the precision its tensors have.
Conversion can succeed and still leave a program the device runs badly or not at all, so the build
fails loudly when:

- any tensor has rank > 5 (the program will not compile on the device);
- an op "fell back": in an fp16 program, a compute op whose float outputs stayed fp32 (coremltools
  could not lower it to fp16, so it runs on the CPU/GPU in fp32 between casts); in an fp32 program,
  any fp16 op.

Casts, constants, ops without float outputs (shapes, argmax) and the image input's own scale/bias (on
the fp32 pixels, before the cast into the program's precision) are not compute and never count.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edgekit.errors import EdgekitFailure

MAX_RANK = 5
_NOT_COMPUTE = ("cast", "const")


@dataclass
class ProgramReport:
    ops: dict[str, int]  # op type -> count
    max_rank: int
    float_ops: dict[str, int]  # "FLOAT16"/"FLOAT32" -> compute ops producing that type
    over_rank: list[str] = field(default_factory=list)  # "op_type output (rank r)"
    fallbacks: list[str] = field(default_factory=list)  # "op_type output (FLOAT32)"
    weights: dict[str, int] = field(default_factory=dict)  # const dtype or constexpr op (compressed) -> count

    def to_dict(self) -> dict:
        return {"ops": dict(sorted(self.ops.items(), key=lambda kv: -kv[1])), "op_count": sum(self.ops.values()),
                "max_rank": self.max_rank, "compute_precision": self.float_ops, "weights": self.weights,
                "over_rank": self.over_rank, "fallbacks": self.fallbacks}

    def check(self) -> None:
        if self.over_rank:
            raise EdgekitFailure(f"the CoreML program has {len(self.over_rank)} tensor(s) of rank > {MAX_RANK}, which "
                                 f"CoreML cannot run (first: {self.over_rank[0]}); the module making them needs a "
                                 f"rank-5 swap (edgekit/rewrite/swaps)")
        if self.fallbacks:
            raise EdgekitFailure(f"{len(self.fallbacks)} op(s) fell back from the requested compute precision "
                                 f"(first: {self.fallbacks[0]})")


def _walk(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk(inner)


def inspect_spec(spec, compute_precision: str) -> ProgramReport:
    """``spec``: an ML Program ``Model`` protobuf (``mlmodel.get_spec()``); ``compute_precision``: "fp16"/"fp32"."""
    from coremltools.proto import MIL_pb2

    dtype_name = MIL_pb2.DataType.Name
    want = {"fp16": "FLOAT16", "fp32": "FLOAT32"}[compute_precision]
    other = "FLOAT32" if want == "FLOAT16" else "FLOAT16"
    ops: Counter = Counter()
    floats: Counter = Counter()
    weights: Counter = Counter()
    max_rank, over_rank, fallbacks = 0, [], []
    for function in spec.mlProgram.functions.values():
        # the image input's scale/bias ops run on the fp32 pixels before the cast into the program's precision
        input_side, constants = {value.name for value in function.inputs}, set()
        for value in function.inputs:
            max_rank = max(max_rank, value.type.tensorType.rank)
        for op in _walk(function.block_specializations[function.opset]):
            if op.type == "const":
                constants.update(out.name for out in op.outputs)
            ops[op.type] += 1
            out_types = set()
            for out in op.outputs:
                tensor = out.type.tensorType
                max_rank = max(max_rank, tensor.rank)
                if tensor.rank > MAX_RANK:
                    over_rank.append(f"{op.type} {out.name} (rank {tensor.rank})")
                out_types.add(dtype_name(tensor.dataType))
            args = [b.name for arg in op.inputs.values() for b in arg.arguments if b.name and b.name not in constants]
            if want == "FLOAT16" and op.type != "cast" and args and all(a in input_side for a in args):
                input_side.update(out.name for out in op.outputs)  # before the cast into fp16: preprocessing
                continue
            if op.type.startswith("constexpr_"):  # compressed weights, decompressed at load (int8: affine dequantize)
                weights[op.type] += 1
                continue
            if op.type in _NOT_COMPUTE:
                if op.type == "const":
                    weights.update(out_types)
                continue
            for t in out_types & {"FLOAT16", "FLOAT32"}:
                floats[t] += 1
            if other in out_types:
                fallbacks.append(f"{op.type} {op.outputs[0].name} ({other})")
    return ProgramReport(dict(ops), max_rank, dict(floats), over_rank, fallbacks, dict(weights))
