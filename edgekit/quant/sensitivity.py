"""Block-wise sensitivity and the accuracy-budget loop.

A block is a module of the exported model (the ONNX node names carry the PyTorch module path, e.g.
``/stages/stages.2/blocks/blocks.1``). Sensitivity of a block: quantize it alone, everything else
in float, and measure agreement and cosine with fp32 on the calibration set. The budget loop
quantizes everything but the islands, then keeps the most sensitive blocks in float, one by one,
until the budget holds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from edgekit.quant.graph import GraphView, block_of
from edgekit.quant.recipes import Candidate
from edgekit.quant.scoring import Budget, Score, Scorer

MIN_BLOCKS = 6  # the shallowest grouping with at least this many blocks is used


@dataclass(frozen=True)
class BlockScore:
    block: str
    nodes: tuple[str, ...]
    score: Score

    def to_dict(self) -> dict:
        return {"block": self.block, "nodes": len(self.nodes), **self.score.to_dict()}


def blocks(proto: onnx.ModelProto, islands: set[str]) -> dict[str, list[str]]:
    """Block name -> the quantizable (weighted, non-island) nodes in it, in graph order.

    The depth of the module path is the shallowest that gives at least MIN_BLOCKS blocks, so a
    model is cut into stages' blocks rather than single layers or whole stages."""
    g = GraphView(proto)
    nodes = [n.name for n in g.nodes if g.is_weighted(n) and n.name not in islands]
    best: dict[str, list[str]] = {}
    for depth in range(1, 8):
        grouped: dict[str, list[str]] = {}
        for n in nodes:
            grouped.setdefault(block_of(n, depth), []).append(n)
        best = grouped
        if len(grouped) >= min(MIN_BLOCKS, len(nodes)):
            break
    return best


def sensitivity(candidate: Candidate, scorer: Scorer, proto: onnx.ModelProto, islands: set[str],
                advance: Callable[[], None] | None = None) -> list[BlockScore]:
    """Each block quantized alone (all other nodes float), most sensitive first."""
    everything = {n.name for n in proto.graph.node}
    out = []
    for name, members in blocks(proto, islands).items():
        keep = (everything - set(members)) | islands
        out.append(BlockScore(name, tuple(members), scorer.score(candidate.make(keep))))
        if advance:
            advance()
    return rank(out)


def rank(scores: list[BlockScore]) -> list[BlockScore]:
    """Lowest agreement first; ties (common on small sets) broken by the mean cosine."""
    return sorted(scores, key=lambda b: (b.score.agreement, b.score.cosine_mean))


@dataclass(frozen=True)
class BudgetResult:
    kept: tuple[str, ...]  # blocks kept in float, in the order they were added
    kept_nodes: frozenset[str]
    score: Score
    met: bool
    steps: tuple[dict, ...]  # {"kept": block, "agreement": ..., "cosine_min": ...} per step


def meet_budget(candidate: Candidate, scorer: Scorer, islands: set[str], ranked: list[BlockScore], budget: Budget,
                first: Score, advance: Callable[[], None] | None = None) -> BudgetResult:
    """Keep blocks in float, most sensitive first, until ``budget`` holds (or every block is float); then
    give back to int8, one by one in the order they were kept, each block the budget holds without.

    Alone-sensitivity ranks a block by what quantizing it alone costs; errors add up across blocks, so a
    block kept early can turn out to be unneeded once later ones are float. Each give-back costs one
    score; the last block kept is not tried (without it the budget did not hold)."""
    by_name = {b.block: b for b in ranked}
    kept: list[str] = []
    score = first
    steps = [{"kept": None, **score.to_dict()}]
    for b in ranked:
        if budget.met(score):
            break
        kept.append(b.block)
        score = scorer.score(candidate.make(islands | _nodes(by_name, kept)))
        steps.append({"kept": b.block, **score.to_dict()})
        if advance:
            advance()
    if budget.met(score):
        for block in list(kept[:-1]):  # the last one kept is what made the budget hold
            trial = [k for k in kept if k != block]
            trial_score = scorer.score(candidate.make(islands | _nodes(by_name, trial)))
            steps.append({"released": block, **trial_score.to_dict()})
            if budget.met(trial_score):
                kept, score = trial, trial_score
    return BudgetResult(tuple(kept), frozenset(_nodes(by_name, kept)), score, budget.met(score), tuple(steps))


def _nodes(by_name: dict[str, BlockScore], kept: list[str]) -> set[str]:
    return {n for k in kept for n in by_name[k].nodes}
