"""int8 for the targets that lower a ``torch.export`` program (ExecuTorch, LiteRT): PyTorch's PT2E flow, with
edgekit's float islands and accuracy budget applied to the quantizer's annotation.

    prepared model --torch.export--> graph --target's quantizer annotates--> islands' annotations removed
        --prepare_pt2e, calibrate, convert_pt2e--> q/dq graph, scored against fp32 on the calibration set
        --[budget missed: blocks ranked by sensitivity, the most sensitive kept in float until it holds]-->
        the q/dq graph the target lowers

Islands are the int8 rules of the other targets (:mod:`edgekit.quant.islands`) read on the FX graph: the stem's
and the head's module, attention matmuls (activation x activation), and LayerNorm, Softmax and GELU where the
quantizer annotates them; ``--keep-fp`` patterns match each node's ONNX-style name
(:func:`edgekit.targets.torch_program.onnx_style_name`: ``/stages.1/blocks.0/attn/MatMul``) or ``op:<OnnxOpType>``.
A node in an island loses its annotation, so prepare_pt2e observes nothing there and it runs in float; the
quantizer's own annotation is the one mechanism.

Candidates are scored in PyTorch on the converted q/dq graph (the quantization the runtime then computes with
int8 kernels); the parity gate afterwards measures the lowered program on its runtime.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np
import torch

from edgekit.calib import CalibrationSet
from edgekit.config import Task
from edgekit.engines.base import first_line
from edgekit.errors import EdgekitFailure
from edgekit.progress import Reporter
from edgekit.quant.islands import REASONS, Island, summarize
from edgekit.quant.options import QuantOptions
from edgekit.quant.scoring import Budget, Score
from edgekit.quant.sensitivity import MIN_BLOCKS, BlockScore, meet_budget, rank
from edgekit.stages.parity import batches, compare
from edgekit.targets.torch_program import ONNX_OP, aten_name, module_path, module_units, onnx_style_name, quiet

WEIGHTED = {"conv2d", "convolution", "conv1d", "linear", "addmm", "mm", "matmul", "bmm", "conv_transpose2d"}
_NORM = {"layer_norm", "native_layer_norm", "group_norm", "native_group_norm"}
_SOFTMAX = {"softmax", "_softmax", "log_softmax", "_log_softmax"}


@dataclass
class Pt2eJob:
    """What a torch-lowering target's int8 build needs from the export: the calibration set, the options
    (islands, budget), the budget itself, the task (how agreement is measured) and the batch of the inputs."""

    calib: CalibrationSet
    options: QuantOptions
    budget: Budget
    task: Task
    batch: int = 1
    reporter: Reporter = field(default_factory=Reporter)


@dataclass
class Pt2eResult:
    model: torch.fx.GraphModule  # the converted q/dq graph
    info: dict  # manifest["quantization"]
    islands: list[Island]


class _Islands:
    """The target's quantizer, its annotations removed on ``keep`` (FX node names): those nodes run in float."""

    def __init__(self, inner, keep: set[str]):
        self.inner, self.keep = inner, keep
        self.removed: set[str] = set()

    def transform_for_annotation(self, model):
        transform = getattr(self.inner, "transform_for_annotation", None)
        return transform(model) if transform else model

    def annotate(self, model):
        model = self.inner.annotate(model) or model
        stripped = set()
        for node in model.graph.nodes:
            if node.name in self.keep and node.meta.pop("quantization_annotation", None) is not None:
                self.removed.add(node.name)
                stripped.add(node)
        # a quantizer shares one node's quantization with its neighbours' (SharedQuantizationSpec: concat inputs,
        # pooling); a share that points at a stripped node would leave prepare_pt2e nothing to share, so those
        # nodes join the island too, until nothing points at one
        while stripped:
            joined = set()
            for node in model.graph.nodes:
                annotation = node.meta.get("quantization_annotation")
                if annotation is not None and _shares_with(annotation, stripped):
                    del node.meta["quantization_annotation"]
                    joined.add(node)
            stripped = joined
        return model

    def validate(self, model) -> None:
        self.inner.validate(model)


def _shares_with(annotation, nodes: set) -> bool:
    """Whether an annotation's shared specs name one of ``nodes`` (as a node, or either end of an edge)."""
    specs = list((getattr(annotation, "input_qspec_map", None) or {}).values())
    specs.append(getattr(annotation, "output_qspec", None))
    for spec in specs:
        target = getattr(spec, "edge_or_node", None)
        ends = target if isinstance(target, tuple) else (target,)
        if any(end in nodes for end in ends):
            return True
    return False


def _as_quantizer(islands: _Islands):
    """:class:`_Islands` as a torchao ``Quantizer`` (prepare_pt2e checks the type)."""
    from torchao.quantization.pt2e.quantizer import Quantizer

    class IslandQuantizer(Quantizer):
        def transform_for_annotation(self, model):
            return islands.transform_for_annotation(model)

        def annotate(self, model):
            return islands.annotate(model)

        def validate(self, model) -> None:
            islands.validate(model)

    return IslandQuantizer()


def find_islands(graph_module, options: QuantOptions) -> list[Island]:
    """Island nodes of ``graph_module`` (FX names) in graph order, the first matching rule giving the reason."""
    nodes = [n for n in graph_module.graph.nodes if n.op == "call_function"]
    weighted = [n for n in nodes if aten_name(n) in WEIGHTED and _has_weight(n)]
    stem = module_path(weighted[0]) if weighted else None
    head = module_path(weighted[-1]) if weighted else None
    out = []
    for n in nodes:
        op = aten_name(n)
        reason = _user_reason(n, op, options.keep_fp)
        if reason is None and options.default_islands:
            if stem is not None and module_path(n) == stem and (weighted[0] is n or op not in WEIGHTED):
                reason = "stem"
            elif head is not None and module_path(n) == head and (weighted[-1] is n or op not in WEIGHTED):
                reason = "head"
            elif op in _NORM:
                reason = "layernorm"
            elif op in _SOFTMAX:
                reason = "softmax"
            elif op == "gelu":
                reason = "gelu"
            elif op in ("matmul", "bmm") and not _has_weight(n):
                reason = "attention_matmul"
        if reason:
            out.append(Island(n.name, ONNX_OP.get(op, op), reason))
    return out


def _user_reason(node, op: str, patterns: tuple[str, ...]) -> str | None:
    name = onnx_style_name(node)
    for p in patterns:
        if p.startswith("op:") and ONNX_OP.get(op, op) == p[3:] or fnmatchcase(name, p) or fnmatchcase(node.name, p):
            return "user"
    return None


def _has_weight(node) -> bool:
    """Whether a matmul-like node reads a constant (a weight), not two activations."""
    return any(isinstance(a, torch.fx.Node) and a.op in ("get_attr",) for a in node.args[:2]) or \
        aten_name(node) in ("conv2d", "convolution", "conv1d", "linear", "addmm", "conv_transpose2d")


class _Trials:
    """Quantize the captured graph with a set of nodes kept in float, and score the result against fp32 (the
    duck-typed candidate and scorer :func:`edgekit.quant.sensitivity.meet_budget` takes)."""

    def __init__(self, graph_module, make_quantizer: Callable, calib: list[torch.Tensor], task: Task,
                 convert_kwargs: dict | None = None):
        self.graph_module, self.make_quantizer, self.calib, self.task = graph_module, make_quantizer, calib, task
        self.convert_kwargs = convert_kwargs or {}
        with torch.no_grad():
            self.reference = [[t.numpy() for t in graph_module(x)] for x in calib]

    def make(self, keep: set[str]):
        with quiet():  # torchao logs, at import, the CUDA kernels it cannot load
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            islands = _Islands(self.make_quantizer(), set(keep))
            prepared = prepare_pt2e(copy.deepcopy(self.graph_module), _as_quantizer(islands))
            with torch.no_grad():
                for x in self.calib:
                    prepared(x)
            converted = convert_pt2e(prepared, **self.convert_kwargs)
        converted.edgekit_removed = islands.removed  # which islands the quantizer had annotated
        return converted

    def score(self, converted) -> Score:
        with torch.no_grad():
            outs = [[t.numpy() for t in converted(x)] for x in self.calib]
        m = compare(self.reference, outs, self.task)
        return Score(m.agreement, m.cosine_min, m.cosine_mean)


def annotated_nodes(graph_module, make_quantizer: Callable) -> list[str]:
    """FX names of the nodes the target's quantizer annotates (what int8 can reach), in graph order."""
    with quiet():
        gm = copy.deepcopy(graph_module)
        quantizer = make_quantizer()
        transform = getattr(quantizer, "transform_for_annotation", None)
        gm = (transform(gm) if transform else gm)
        quantizer.annotate(gm)
    return [n.name for n in gm.graph.nodes if n.op == "call_function" and "quantization_annotation" in n.meta]


def blocks(graph_module, names: list[str]) -> dict[str, list[str]]:
    """Block (module path prefix) -> its annotated nodes (layers, and the adds, products and pooling the quantizer
    annotates around them): the shallowest depth giving at least MIN_BLOCKS. With every block in float nothing is
    int8, so a budget the fp32 model meets is always met in the end."""
    by_name = {n.name: n for n in graph_module.graph.nodes}
    best: dict[str, list[str]] = {}
    for depth in range(1, 8):
        grouped: dict[str, list[str]] = {}
        for name in names:
            units = module_units(module_path(by_name[name]))
            grouped.setdefault(".".join(units[:depth]) or "(root)", []).append(name)
        best = grouped
        if len(grouped) >= min(MIN_BLOCKS, len(names)):
            break
    return best


def quantize_pt2e(model: torch.nn.Module, example: torch.Tensor, make_quantizer: Callable, job: Pt2eJob,
                  quantizer_name: str, convert_kwargs: dict | None = None) -> Pt2eResult:
    """``model`` (a :class:`edgekit.targets.torch_program.Flat`) -> its converted q/dq graph, islands kept in
    float and the budget met where it can be (see the module docstring)."""
    rep, options, budget = job.reporter, job.options, job.budget
    with quiet(), torch.no_grad():
        try:
            graph_module = torch.export.export(model, (example,), strict=False).module()
        except Exception as e:  # noqa: BLE001 - torch.export raises many types; its first line says what broke
            line = first_line(e, 300)
            raise EdgekitFailure(f"torch.export cannot capture the model for int8: {line}") from None
    calib = [torch.from_numpy(np.ascontiguousarray(x)) for x in batches(job.calib.inputs, job.batch)]
    islands = find_islands(graph_module, options)
    keep = {i.node for i in islands}
    trials = _Trials(graph_module, make_quantizer, calib, job.task, convert_kwargs)
    with rep.step(f"quantize with {quantizer_name} (PT2E), calibrated on {len(job.calib)} images"):
        converted = trials.make(keep)
        first = trials.score(converted)
    annotated = [n for n in annotated_nodes(graph_module, make_quantizer) if n not in keep]
    op = {n.name: aten_name(n) for n in graph_module.graph.nodes}
    if not any(op.get(n) in WEIGHTED for n in annotated):
        raise EdgekitFailure(f"{quantizer_name} quantizes none of this model's layers outside its float islands; "
                             f"export fp32 or fp16 instead")
    ranked: list[BlockScore] = []
    kept_blocks: tuple[str, ...] = ()
    steps: tuple[dict, ...] = ({"kept": None, **first.to_dict()},)
    score, met = first, budget.met(first)
    if not met:
        grouped = blocks(graph_module, annotated)
        with rep.step(f"sensitivity of {len(grouped)} blocks", total=len(grouped)):
            for name, members in grouped.items():
                alone = set(annotated) - set(members) | keep
                ranked.append(BlockScore(name, tuple(members), trials.score(trials.make(alone))))
                rep.advance()
        ranked = rank(ranked)
        with rep.step("keep sensitive blocks in float until the budget holds", total=len(ranked)):
            result = meet_budget(trials, trials, keep, ranked, budget, first, rep.advance)
        kept_blocks, steps, score, met = result.kept, result.steps, result.score, result.met
        keep = keep | set(result.kept_nodes)
        converted = trials.make(keep)
        islands = islands + [Island(n, ONNX_OP.get(op[n], op[n]), "budget") for n in sorted(result.kept_nodes)]
    removed = getattr(converted, "edgekit_removed", set())
    # an island the quantizer would not have annotated anyway (LayerNorm on XNNPACK) is float either way: listed
    # only where the island changed what was quantized, or where the user asked
    listed = [i for i in islands if i.node in removed or i.reason in ("user", "budget")]
    layers = [n for n in annotated if op.get(n) in WEIGHTED]  # conv / linear / matmul: what the summary counts
    info = _info(quantizer_name, job, listed, layers, keep, score, budget, met, kept_blocks, steps)
    return Pt2eResult(converted, info, listed)


def _info(quantizer_name: str, job: Pt2eJob, islands: list[Island], annotated: list[str], keep: set[str],
          score: Score, budget: Budget, met: bool, kept_blocks: tuple[str, ...], steps: tuple[dict, ...]) -> dict:
    options, calib = job.options, job.calib
    by_reason = summarize(islands)
    quantized = [n for n in annotated if n not in keep]
    kept_desc = ", ".join(f"{k} {v['count']}" for k, v in by_reason.items()) or "none"
    summary = (f"int8 via PT2E ({quantizer_name}): {len(quantized)} of {len(annotated)} conv/linear layers int8; "
               f"agreement {score.agreement * 100:.1f}%, cosine min {score.cosine_min:.4f} vs fp32 on {len(calib)} "
               f"calibration images; in float: {kept_desc}"
               + (f", blocks {', '.join(kept_blocks)}" if kept_blocks else ""))
    return {
        "summary": summary,
        "precision": "int8",
        "method": "pt2e",
        "recipe": f"pt2e-{quantizer_name.split()[0].lower()}",
        "recipe_details": f"torch.export + {quantizer_name} (per-channel symmetric int8 weights, per-tensor "
                          f"activations, the quantizer's own observers); islands remove its annotations",
        "calibration": {"source": calib.source, "images": len(calib), "sha256": calib.sha256,
                        "cache": "none (PT2E observers calibrate the graph itself)"},
        "islands": by_reason,
        "keep_fp_patterns": list(options.keep_fp),
        "default_islands": options.default_islands,
        "layers": {"int8": len(quantized), "quantizable": len(annotated)},
        "budget": {**budget.to_dict(), "max_drop": options.max_drop, "met": met, "kept_blocks": list(kept_blocks),
                   "steps": list(steps)},
        "kept": {"agreement": round(score.agreement, 6), "cosine_min": round(score.cosine_min, 6),
                 "cosine_mean": round(score.cosine_mean, 6),
                 "measured_on": f"{len(calib)} calibration images vs fp32, the q/dq graph run in PyTorch"},
    }


__all__ = ["Pt2eJob", "Pt2eResult", "REASONS", "find_islands", "quantize_pt2e"]
