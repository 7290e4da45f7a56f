"""Run candidate quantized models on the target's runtime and score them against the fp32 model.

The score is what the parity gate measures (agreement and worst-image cosine with fp32) plus the
latency on this machine, so recipes are chosen and budgets checked on the runtime that will run
the bundle, not assumed (the target's int8 plan says which: TensorRT's QDQ graph is scored in ONNX Runtime,
as no TensorRT runs here).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from edgekit.config import Task
from edgekit.errors import EdgekitFailure
from edgekit.stages.parity import batches, compare
from edgekit.debug.graph_taps import to_openvino
from edgekit.quant.plan import Scoring

Infer = Callable[[np.ndarray], list[np.ndarray]]  # every output, in order


@dataclass(frozen=True)
class Score:
    agreement: float  # top-1, per-pixel label or (features) mean cosine agreement with fp32, in [0, 1]
    cosine_min: float  # worst image
    cosine_mean: float
    ms: float | None = None  # single-thread latency on this machine (median CPU ms), when timed

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Budget:
    """What a quantized model must keep: agreement with fp32 and worst-image cosine."""

    agreement: float
    cosine: float

    def met(self, s: Score) -> bool:
        return s.agreement >= self.agreement - 1e-9 and s.cosine_min >= self.cosine

    def to_dict(self) -> dict:
        return {"agreement_min": self.agreement, "cosine_min": self.cosine}


def compile_for(scoring: Scoring, proto: onnx.ModelProto, threads: int | None) -> Infer:
    """A callable running ``proto`` (fp32 or QDQ) on the ``scoring`` runtime's engine on this machine."""
    from edgekit.engines import EngineError, open_engine

    runtime = "openvino" if scoring is Scoring.OPENVINO else "onnxruntime"
    # f32 for whatever is not int8: OpenVINO on a CPU with AVX512-BF16 otherwise silently runs bf16
    model, options = (to_openvino(proto, "the quantized model"), {"inference_precision": "f32"}) if runtime == "openvino" else \
        (proto.SerializeToString(), {})
    try:
        engine = open_engine(runtime, model, options, threads)
    except EngineError as e:
        what = "OpenVINO cannot compile" if runtime == "openvino" else "ONNX Runtime cannot load"
        raise EdgekitFailure(f"{what} the quantized model: {e.detail[:300]}") from None
    name = engine.input_names[0]
    return lambda x: engine.infer({name: x})  # every output, in the graph's order


class Scorer:
    """fp32 outputs computed once; candidates scored against them on the calibration inputs."""

    def __init__(self, scoring: Scoring, fp32: onnx.ModelProto, inputs: list[np.ndarray], task: Task,
                 threads: int | None = None, batch: int = 1):
        self.scoring, self.task, self.threads = scoring, task, threads
        self.inputs = batches(inputs, batch)
        self.fp32 = compile_for(scoring, fp32, threads)
        self.reference = [self.fp32(x) for x in self.inputs]

    def runner(self, proto: onnx.ModelProto, threads: int | None = None) -> Infer:
        return compile_for(self.scoring, proto, threads or self.threads)

    def score(self, proto: onnx.ModelProto) -> Score:
        run = self.runner(proto)
        m = compare(self.reference, [run(x) for x in self.inputs], self.task)
        return Score(m.agreement, m.cosine_min, m.cosine_mean)


def time_interleaved(runs: dict[str, Infer], x: np.ndarray, rounds: int = 8, per_round: int = 3,
                     warmup: int = 3) -> dict[str, dict]:
    """Single-thread latency of several runners, timed in alternation by edgekit's timing harness
    (:func:`edgekit.engines.timing.interleave`) as CPU time of this process: per runner the median and the
    minimum over ``rounds x per_round`` runs, in ms.

    The runners must run on one thread (:meth:`Scorer.runner` with ``threads=1``): then CPU time is the
    compute itself, and time spent descheduled by other processes on a shared machine does not count (wall
    clock medians varied 5x run to run on the 2 shared cores this was written on; CPU time by a few %)."""
    from edgekit.engines.timing import interleave

    samples = interleave({name: (lambda run=run: run(x)) for name, run in runs.items()}, rounds=rounds,
                         per_round=per_round, warmup=warmup)
    return {k: {"median_ms": statistics.median(s.cpu_ms), "min_ms": min(s.cpu_ms)} for k, s in samples.items()}
