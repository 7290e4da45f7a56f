"""`edgekit tune MODEL --out DIR`: every target and precision that runs on the device, the fastest one that
keeps the accuracy budget written to DIR.

1. Candidates: each target available here (or given), each precision it supports (bf16 / fp16 on OpenVINO
   only where the CPU computes them; TensorRT only with a GPU, CoreML only on macOS); what cannot run is a
   row with its reason.
2. Each is exported (cached by content hash, :mod:`.cells`) with its parity gate, and judged: top-1 or mIoU
   on ``data`` (labeled, as `edgekit evaluate`), its drop from the fp32 export's in points; without ``data``
   the gate's agreement with PyTorch, its drop from 100%.
3. The candidates inside ``max_drop`` are timed together as `edgekit profile` times several bundles: each
   alone, then interleaved head to head (the figure the choice is made on); the others are not timed.
4. The fastest in budget is copied to ``out``; its manifest's ``tune`` records every row and why it won,
   and ``out/tune.json``, ``tune.md`` and ``tune.html`` hold the table, the Pareto front and its plot.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgekit.errors import EdgekitFailure, UsageError
from edgekit.progress import Reporter
from edgekit.tune import report as tables
from edgekit.tune.cells import AVAILABLE_TARGETS, Job, accuracy, available, build, time_bundles

DEFAULT_MAX_DROP = 1.0  # points of top-1 / mIoU / agreement


def default_cache() -> Path:
    import os

    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "tune"


def tune(source: str, out: str | Path, *, targets: tuple[str, ...] = (), precisions: tuple[str, ...] = (),
         data: str | Path | None = None, max_drop: float = DEFAULT_MAX_DROP, remote=None,
         cache: str | Path | None = None, export_options: dict | None = None, iterations: int = 50,
         warmup: int = 10, threads: int | None = None, force: bool = False, reporter: Reporter | None = None) -> dict:
    """Returns the result (``rows``, ``chosen``, ``why``, ``pareto``) that ``out/tune.json`` holds."""
    from edgekit.config import Precision, Target
    from edgekit.manifest import read_manifest, write_manifest
    from edgekit.stages.bundle import check_destination, staged_bundle
    from edgekit.targets import get_backend

    rep = reporter or Reporter()
    out = Path(out)
    check_destination(out, force)
    if max_drop < 0:
        raise UsageError(f"--max-drop must be >= 0 points, got {max_drop}")
    if data is not None and not Path(data).is_dir():
        raise UsageError(f"--data {data} is not a folder; give a labeled folder as `edgekit evaluate` reads")
    targets = tuple(Target.parse(t).value for t in targets) or AVAILABLE_TARGETS
    wanted = tuple(Precision.parse(p).value for p in precisions)
    options = dict(export_options or {})
    where = f" on {remote}" if remote else " here"

    rows, jobs = [], []
    for target in targets:
        for precision in [p.value for p in get_backend(Target.parse(target)).precisions]:
            if wanted and precision not in wanted:
                continue
            why = available(target, precision, remote is not None)
            row = {"model": source, "target": target, "precision": precision}
            if why:
                rows.append({**row, "status": "skipped", "reason": why})
            else:
                rows.append({**row, "status": "pending"})
                jobs.append((len(rows) - 1, Job(source, target, precision, options)))
    if not jobs:
        raise UsageError(f"nothing to try{where}: " + "; ".join(f"{r['target']} {r['precision']}: {r['reason']}"
                                                                 for r in rows))
    cache_dir = Path(cache) if cache else default_cache()
    with rep.step(f"export {len(jobs)} candidates (cached in {cache_dir})", total=len(jobs)):
        for i, job in jobs:
            record = build(job, cache_dir)
            rows[i].update(status=record["status"], reason=record["reason"], bundle=record["bundle"],
                           export_s=record.get("export_s"), cache=record["cache"])
            rep.advance()
    reference = None
    if data is not None and not any(j.precision == "fp32" for _, j in jobs):
        # the drop is measured from an fp32 export: made (cached) as the reference, not as a candidate
        record = build(Job(source, jobs[0][1].target, "fp32", options), cache_dir)
        if record["status"] != "ok":
            raise EdgekitFailure(f"the fp32 reference export failed, so no drop can be measured: {record['reason']}")
        reference = accuracy(record["bundle"], data)["value"]
    built = [r for r in rows if r["status"] == "ok"]
    with rep.step(f"measure the accuracy of {len(built)} candidates"
                  + (f" on {data}" if data else " (parity agreement with PyTorch)"), total=len(built)):
        for r in built:
            try:
                r.update(accuracy(r["bundle"], data))
            except EdgekitFailure as e:
                r.update(status="failed", reason=str(e))
            rep.advance()
    _drops(rows, data, max_drop, reference)
    inside = [r for r in rows if r.get("in_budget")]
    if not inside:
        judged = sorted((r for r in rows if r.get("drop") is not None), key=lambda r: r["drop"])
        closest = (f"; the closest was {judged[0]['target']} {judged[0]['precision']} ({judged[0]['drop']:.2f} "
                   f"points)" if judged else "")
        failed = "; ".join(f"{r['target']} {r['precision']}: {r['reason']}" for r in rows if r["status"] == "failed")
        raise UsageError(f"no candidate keeps the accuracy within --max-drop {max_drop:g} points{closest}"
                         + (f" (failed: {failed})" if failed and not judged else ""))
    with rep.step(f"time {len(inside)} candidates in budget{where} (each alone, then head to head)"):
        timings = time_bundles([Path(r["bundle"]) for r in inside], remote, iterations, warmup, threads)
    for r, t in zip(inside, timings):
        r.update(latency_ms=t.get("head_to_head_ms", t["latency_ms"]), latency_alone_ms=t["latency_ms"],
                 p90_ms=t.get("p90_ms"), status="timed")
    chosen = min(inside, key=lambda r: r["latency_ms"])
    front = tables.pareto(inside)
    for r in rows:
        r["pareto"] = any(r is f for f in front)
    why = _why(chosen, rows, max_drop)
    result = {"model": source, "device": str(remote) if remote else "local", "max_drop": max_drop,
              "accuracy_on": str(data) if data else "parity images (agreement with PyTorch)",
              "chosen": {"target": chosen["target"], "precision": chosen["precision"]}, "why": why,
              "rows": [{k: v for k, v in r.items() if k != "bundle"} for r in rows],
              "pareto": [{"target": r["target"], "precision": r["precision"], "latency_ms": r["latency_ms"],
                          "value": r["value"]} for r in front]}
    with rep.step(f"write {chosen['target']} {chosen['precision']} to {out}"), staged_bundle(out, force) as staging:
        shutil.copytree(chosen["bundle"], staging, dirs_exist_ok=True)
        manifest = read_manifest(staging).to_dict()
        manifest["tune"] = {k: result[k] for k in ("device", "max_drop", "accuracy_on", "why")} | {
            "candidates": [{k: r.get(k) for k in ("target", "precision", "status", "latency_ms", "metric", "value",
                                                  "drop", "reason") if r.get(k) is not None} for r in rows]}
        write_manifest(staging, manifest)
        (staging / "tune.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (staging / "tune.md").write_text(f"# edgekit tune {source}\n\n{why}\n\n" + tables.markdown(rows))
        (staging / "tune.html").write_text(tables.html(rows, f"edgekit tune {source}", why))
    return result


def _drops(rows: list[dict], data, max_drop: float, reference: float | None = None) -> None:
    """Each judged row's drop in points, from the fp32 export's metric (``data``; ``reference`` when no fp32
    candidate was tried) or from full agreement."""
    judged = [r for r in rows if r.get("value") is not None and r["status"] == "ok"]
    if data is not None:
        fp32 = [r["value"] for r in judged if r["precision"] == "fp32"]
        if not fp32 and reference is not None:
            fp32 = [reference]
        if not fp32:
            raise EdgekitFailure("no fp32 candidate could be exported and measured, so no drop can be measured: "
                                 + "; ".join(f"{r['target']} fp32: {r.get('reason')}" for r in rows
                                             if r["precision"] == "fp32"))
        reference = max(fp32)
        for r in judged:
            r["drop"] = round((reference - r["value"]) * 100, 4)
    else:
        for r in judged:
            r["drop"] = round((1.0 - r["value"]) * 100, 4)
    for r in judged:
        r["in_budget"] = r["drop"] <= max_drop + 1e-9
        if not r["in_budget"]:
            r.update(status="over budget", reason=f"drops {r['drop']:.2f} points > {max_drop:g}: not timed")


def _why(chosen: dict, rows: list[dict], max_drop: float) -> str:
    timed = sorted((r for r in rows if r.get("latency_ms") is not None), key=lambda r: r["latency_ms"])
    runner_up = next((r for r in timed if r is not chosen), None)
    fp32 = [r for r in timed if r["precision"] == "fp32"]
    parts = [f"{chosen['target']} {chosen['precision']}: the fastest of {len(timed)} candidates within "
             f"{max_drop:g} points ({chosen['latency_ms']:.3f} ms median, drop {chosen['drop']:.2f})"]
    if runner_up:
        parts.append(f"{runner_up['latency_ms'] / chosen['latency_ms']:.2f}x faster than the next, "
                     f"{runner_up['target']} {runner_up['precision']}")
    default = next((r for r in fp32 if r["target"] == "onnx"), fp32[0] if fp32 else None)
    if default is not None and default is not chosen:
        parts.append(f"{default['latency_ms'] / chosen['latency_ms']:.2f}x the {default['target']} fp32 export")
    return "; ".join(parts)
