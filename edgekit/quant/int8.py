"""INT8 for one target: calibrate, find the islands, choose the recipe, keep to the budget.

    fp32 ONNX --calibrate--> ranges --candidates x islands--> scored on the target's runtime
              --best--> [sensitivity -> keep blocks in float until the budget holds] --> QDQ ONNX + report

The export pipeline calls :func:`quantize_onnx_for_target` for ``--precision int8``; it returns the QDQ model
and what the manifest records under ``quantization``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import onnx

from edgekit.calib import CalibrationSet
from edgekit.config import ExportConfig, Precision, Task, Tolerance
from edgekit.errors import EdgekitFailure
from edgekit.progress import Reporter
from edgekit.quant.calibrate import calibrate
from edgekit.quant.islands import Island, find_islands, summarize
from edgekit.quant.options import QuantOptions
from edgekit.quant.plan import Int8Plan
from edgekit.quant.recipes import Candidate, candidates_for
from edgekit.quant.scoring import Budget, Score, Scorer, time_interleaved
from edgekit.quant.sensitivity import BlockScore, BudgetResult, meet_budget, sensitivity


@dataclass
class Int8Result:
    model: onnx.ModelProto  # the QDQ model
    info: dict  # manifest["quantization"]
    islands: list[Island] = field(default_factory=list)
    ranked: list[BlockScore] = field(default_factory=list)


def budget_for(options: QuantOptions, agreement: float, cosine: float) -> Budget:
    """The parity gate's int8 tolerance, tightened by --max-drop (points of agreement with fp32)."""
    if options.max_drop is not None:
        agreement = max(agreement, 1.0 - options.max_drop / 100.0)
    return Budget(agreement, cosine)


def quantize_onnx_for_target(proto: onnx.ModelProto, plan: Int8Plan, config: ExportConfig, spec,
                             calib: CalibrationSet, reporter: Reporter,
                             options: QuantOptions | None = None) -> tuple[onnx.ModelProto, dict]:
    """fp32 ONNX -> (the int8 QDQ ONNX of the target whose ``plan`` it is, manifest ``quantization`` entry)."""
    options = options or QuantOptions()
    tol = config.tolerance or Tolerance.default(Precision.INT8).overridden(spec.tolerance, Precision.INT8)
    budget = budget_for(options, tol.agreement if tol.agreement is not None else 0.0, tol.cosine)
    batch = 1 if config.dynamic_batch else spec.input_shape[0]
    step = budget_resolution(spec.task, len(calib))
    if options.max_drop and step is not None and step > options.max_drop:
        reporter.note(f"--max-drop {options.max_drop:g} is finer than the calibration set can measure: with "
                      f"{len(calib)} images one changed top-1 is {step:.2f} points of agreement, so no change at all "
                      f"is allowed; {-(-100 // options.max_drop):.0f}+ images (--calib / --calib-size) give the budget "
                      f"its meaning")
    result = quantize_int8(proto, plan, spec.task, calib, options, budget, config.threads, batch, reporter)
    if step is not None:
        result.info["budget"]["agreement_step_points"] = round(step, 4)  # what one changed top-1 costs
    speed = result.info["speed"]
    if speed["speedup"] < 1.0:
        reporter.note(f"int8 runs slower than fp32 on this machine ({speed['speedup']:.2f}x: {speed['fp32_ms']:.2f} -> "
                      f"{speed['int8_ms']:.2f} ms); small inputs and depthwise/elementwise-heavy models gain little "
                      f"from int8 GEMMs while paying for quantize/dequantize: consider fp16/bf16, or profile with "
                      f"`edgekit profile`")
    return result.model, result.info


def budget_resolution(task: Task, images: int) -> float | None:
    """Points of agreement one changed prediction costs on the calibration set: 100 / images for top-1
    (classification); None for segmentation, whose agreement is per pixel."""
    return 100.0 / images if task is Task.CLASSIFICATION and images else None


def quantize_int8(proto: onnx.ModelProto, plan: Int8Plan, task: Task, calib: CalibrationSet, options: QuantOptions,
                  budget: Budget, threads: int | None = None, batch: int = 1,
                  reporter: Reporter | None = None) -> Int8Result:
    rep = reporter or Reporter()
    islands = find_islands(proto, plan.island_rules, Precision.INT8, options.keep_fp, options.default_islands)
    island_names = {i.node for i in islands}
    inputs = calib.inputs
    with rep.step(f"calibrate ({options.method_key()}) on {len(calib)} images", total=len(calib)):
        ranges, cache = calibrate(proto, inputs, calib.sha256, options, threads, rep.advance)
    scorer = Scorer(plan.scoring, proto, inputs, task, threads, batch)
    candidates = candidates_for(plan, proto, inputs, ranges, options)
    with rep.step(f"score {len(candidates)} recipe(s) on {plan.scored_on}", total=len(candidates) + 1):
        scored, runners, failed = [], {}, []
        for c in candidates:
            try:
                model = c.make(island_names)
            except EdgekitFailure as e:  # one tool failing on this graph must not lose the others' recipes
                c.tried = {"error": str(e)}
                failed.append(c)
                rep.advance()
                continue
            scored.append((c, scorer.score(model)))
            runners[c.name] = scorer.runner(model, threads=1)
            rep.advance()
        if not scored:
            raise EdgekitFailure("no INT8 recipe could quantize this model: "
                                 + "; ".join(f"{c.name}: {c.tried['error']}" for c in failed))
        candidates = [c for c, _ in scored] + failed
        timing = time_interleaved(runners, scorer.inputs[0]) if len(runners) > 1 else {}
        for c, score in scored:
            c.tried = {**score.to_dict(), **({"ms": round(timing[c.name]["median_ms"], 4)} if timing else {})}
        rep.advance()
    scored = [(c, replace(s, ms=c.tried.get("ms"))) for c, s in scored]
    chosen, first = _choose(scored, budget)
    ranked: list[BlockScore] = []
    result = BudgetResult((), frozenset(), first, budget.met(first), ({"kept": None, **first.to_dict()},))
    fallback = None
    if not budget.met(first):
        ranked, result = _budget_loop(chosen, first, scorer, proto, island_names, budget, rep)
        # a recipe may quantize what no block holds (NNCF: the inputs of Add, Mul, pooling), so with every
        # block in float it can still miss the budget; then the others get the same loop, most accurate first
        others = sorted((cs for cs in scored if cs[0] is not chosen), key=lambda cs: (-cs[1].agreement, -cs[1].cosine_min))
        missed = chosen.name
        for alt, alt_first in (others if not result.met else []):
            rep.note(f"{missed} misses the budget even with every block in float; trying {alt.name}")
            alt_ranked, alt_result = _budget_loop(alt, alt_first, scorer, proto, island_names, budget, rep)
            missed = alt.name
            if alt_result.met:
                fallback = {"from": chosen.name, "why": "missed the budget with every block in float",
                            "steps": list(result.steps)}
                chosen, ranked, result = alt, alt_ranked, alt_result
                break
    keep = island_names | result.kept_nodes
    model = chosen.make(keep)
    op_type = {n.name: n.op_type for n in proto.graph.node}
    islands = islands + [Island(n, op_type.get(n, ""), "budget") for n in sorted(result.kept_nodes - island_names)]
    islands += [Island(n, t, "recipe") for n, t in chosen.float_nodes.items() if n not in keep]
    with rep.step("time fp32 and int8"):
        speed = time_interleaved({"fp32": scorer.runner(proto, threads=1), "int8": scorer.runner(model, threads=1)},
                                 scorer.inputs[0])
    info = _info(plan.scored_on, options, calib, cache, islands, chosen, candidates, budget, result, speed)
    if fallback:
        info["budget"]["fallback"] = fallback
    return Int8Result(model, info, islands, ranked)


def _budget_loop(candidate: Candidate, first: Score, scorer: Scorer, proto: onnx.ModelProto, islands: set[str],
                 budget: Budget, rep: Reporter) -> tuple[list[BlockScore], BudgetResult]:
    """Sensitivity of each block under ``candidate``, then keep the most sensitive in float until ``budget``."""
    from edgekit.quant.sensitivity import blocks

    n = len(blocks(proto, islands))
    with rep.step(f"sensitivity of {n} blocks ({candidate.name})", total=n):
        ranked = sensitivity(candidate, scorer, proto, islands, rep.advance)
    with rep.step("keep sensitive blocks in float until the budget holds", total=len(ranked)):
        return ranked, meet_budget(candidate, scorer, islands, ranked, budget, first, rep.advance)


def _choose(scored: list[tuple[Candidate, Score]], budget: Budget) -> tuple[Candidate, Score]:
    """The fastest candidate meeting the budget, else the most accurate."""
    passing = [(c, s) for c, s in scored if budget.met(s)]
    if passing:
        return min(passing, key=lambda cs: cs[1].ms if cs[1].ms is not None else 0.0)
    return max(scored, key=lambda cs: (cs[1].agreement, cs[1].cosine_min))


def _info(scored_on: str, options: QuantOptions, calib: CalibrationSet, cache: dict, islands: list[Island],
          chosen: Candidate, candidates: list[Candidate], budget: Budget, result: BudgetResult, speed: dict) -> dict:
    s = result.score
    fp32_ms, int8_ms = speed["fp32"]["median_ms"], speed["int8"]["median_ms"]
    by_reason = summarize(islands)
    kept_desc = ", ".join(f"{k} {v['count']}" for k, v in by_reason.items()) or "none"
    speedup = fp32_ms / int8_ms if int8_ms > 0 else float("nan")
    summary = (f"int8 via {chosen.name} ({options.method_key()} ranges): agreement {s.agreement * 100:.1f}%, "
               f"cosine min {s.cosine_min:.4f} vs fp32 on {len(calib)} calibration images; in float: {kept_desc}"
               + (f", blocks {', '.join(result.kept)}" if result.kept else "")
               + f"; {speedup:.2f}x fp32 speed here ({fp32_ms:.2f} -> {int8_ms:.2f} ms)")
    return {
        "summary": summary,
        "precision": "int8",
        "method": options.method_key(),
        "recipe": chosen.name,
        "recipe_details": chosen.describe,
        "candidates": [{"name": c.name, **c.tried, "chosen": c is chosen} for c in candidates],
        "calibration": {"source": calib.source, "images": len(calib), "sha256": calib.sha256, **cache},
        "islands": by_reason,
        "keep_fp_patterns": list(options.keep_fp),
        "default_islands": options.default_islands,
        "budget": {**budget.to_dict(), "max_drop": options.max_drop, "met": result.met,
                   "kept_blocks": list(result.kept), "steps": list(result.steps)},
        "kept": {"agreement": round(s.agreement, 6), "cosine_min": round(s.cosine_min, 6),
                 "cosine_mean": round(s.cosine_mean, 6),
                 "measured_on": f"{len(calib)} calibration images vs fp32 on {scored_on}"},
        "speed": {"fp32_ms": round(fp32_ms, 3), "int8_ms": round(int8_ms, 3), "speedup": round(speedup, 3),
                  "fp32_min_ms": round(speed["fp32"]["min_ms"], 3), "int8_min_ms": round(speed["int8"]["min_ms"], 3),
                  "runtime": scored_on, "threads": 1,
                  "how": "median (and min) CPU ms of 24 single-thread runs each, fp32 and int8 alternating, "
                         "first calibration image"},
        **({"reference_bundle": options.reference_bundle} if options.reference_bundle else {}),
    }

