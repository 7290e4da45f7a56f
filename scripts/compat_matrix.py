#!/usr/bin/env python3
"""The compatibility matrix: every corpus model (tests/compat/corpus.py) through edgekit's real export
pipeline for each of its targets, written to docs/compatibility.md (model x target x precision: pass with the
worst cosine, or the failure's one-line reason).

    PYTHONPATH=. .venv/bin/python scripts/compat_matrix.py            # the CI tier: one model per family
    PYTHONPATH=. .venv/bin/python scripts/compat_matrix.py --full     # every model (what the doc shows)
    PYTHONPATH=. .venv/bin/python scripts/compat_matrix.py --only hf/vit mobilevit_xxs --no-doc
    PYTHONPATH=. .venv/bin/python scripts/compat_matrix.py --from-json full.json   # the doc from a --json run

Each model runs in its own process (a runtime that crashes or hangs costs that model's row, not the run).
Exit code 1 when a pair fails that the corpus does not declare as a known failure, or a declared one passes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.compat.corpus import CORPUS, FAMILY_TARGETS, PRECISION, Model, by_id  # noqa: E402

DOC = ROOT / "docs" / "compatibility.md"
TARGET_NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO", "trt": "TensorRT (--onnx-only)", "coreml": "CoreML",
                "executorch": "ExecuTorch", "litert": "LiteRT"}
MODEL_TIMEOUT_S = 1800


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("edgekit", "torch", "timm", "transformers", "onnx", "onnxruntime", "openvino", "coremltools", "executorch",
                "litert-torch", "ai-edge-litert"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def targets_of(model: Model, full: bool) -> tuple[str, ...]:
    return model.targets if full else model.ci_targets


def worker(model_id: str, workdir: Path, full: bool) -> int:
    """Run one model's pairs in this process; one JSON line per pair on stdout."""
    import torch

    from tests.compat.runner import run_pair

    torch.set_num_threads(min(2, os.cpu_count() or 1))  # as the test suite does on 2-core machines
    model = by_id(model_id)
    for target in targets_of(model, full):
        result = run_pair(model, target, workdir)
        print("RESULT " + json.dumps(result.to_dict()), flush=True)
    return 0


def run_model(model: Model, workdir: Path, full: bool) -> list[dict]:
    """The model's pairs from a child process; a crash or timeout becomes the reason of the pairs left."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model.id, "--workdir", str(workdir),
           *(["--full"] if full else [])]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MODEL_TIMEOUT_S, env=env, cwd=ROOT)
        stdout, why = proc.stdout, (f"the export process died (exit {proc.returncode})" if proc.returncode else "")
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        why = f"timed out after {MODEL_TIMEOUT_S} s"
    results = [json.loads(line[len("RESULT "):]) for line in stdout.splitlines() if line.startswith("RESULT ")]
    done = {r["target"] for r in results}
    for target in targets_of(model, full):
        if target not in done:
            results.append({"model": model.id, "target": target, "precision": PRECISION, "passed": False,
                            "cosine": None, "measured_on": "", "reason": why or "no result", "error_type": "crash",
                            "seconds": round(time.perf_counter() - start, 1)})
    return results


def merged(paths: list[Path]) -> tuple[dict, list[str]]:
    """The first run with the pairs of the later ones in place of its own, and a line per later run."""
    runs = [json.loads(p.read_text()) for p in paths]
    base = runs[0]
    results = {(r["model"], r["target"]): r for r in base["results"]}
    notes = []
    for run in runs[1:]:
        results.update({(r["model"], r["target"]): r for r in run["results"]})
        models = sorted({r["model"] for r in run["results"]})
        notes.append(f"{', '.join(f'`{m}`' for m in models)} re-run on {run['date']} ({run['wall_s'] / 60:.1f} min)")
    return {**base, "results": list(results.values())}, notes


def verdict(model: Model, result: dict) -> str:
    """'ok', 'known' (fails as declared), or what is wrong."""
    known = model.known_for(result["target"])
    if known is None:
        return "ok" if result["passed"] else "unexpected failure"
    if result["passed"]:
        return "declared failure now passes: remove the Known entry"
    return "known" if known.match in result["reason"] else "fails differently than declared"


def cell(model: Model, result: dict | None) -> str:
    if result is None:
        return ""
    if result["passed"]:
        if result["cosine"] is None:
            return "converts ¹"
        gap = 1.0 - result["cosine"]
        cos = "1" if gap <= 0 else f"1 − {gap:.0e}"
        return f"pass ({cos}{' ²' if result['measured_on'] == 'stand-in' else ''})"
    reason = result["reason"].split(" (cosine min")[0].split("; no bundle written")[0]
    mark = " ³" if model.known_for(result["target"]) else ""
    return f"**fail**{mark}: {reason[:160]}".replace("|", "\\|")


def render(results: list[dict], full: bool, cpu: str, when: str, wall_s: float, argv: list[str],
           versions_used: dict | None = None, reruns: list[str] | tuple = ()) -> str:
    by_model: dict[str, dict[str, dict]] = {}
    for r in results:
        by_model.setdefault(r["model"], {})[r["target"]] = r
    models = [m for m in CORPUS if m.id in by_model]
    passed = sum(r["passed"] for r in results)
    targets = ("onnx", "openvino", *FAMILY_TARGETS)
    published = [m for m in models if m.library == "timm" and m.published]
    slimmed = [m for m in models if m.library == "timm" and not m.published]
    hf_models = [m for m in models if m.library == "transformers"]
    lines = [
        "# Compatibility matrix",
        "",
        "Models users bring, beyond edgekit's zoo, through the real export pipeline (`edgekit.export`) with random "
        "weights (re-initialised so the output depends on the image: `tests/compat/weights.py`): every model to "
        "ONNX Runtime and OpenVINO, and each family's representative (rep) also to the TensorRT-flavoured ONNX, "
        "CoreML, ExecuTorch (XNNPACK) and LiteRT, all fp32. A pass means the parity gate passed at its default tolerances (cosine >= 0.99999 and max "
        "abs error <= 1e-3 of the output range, worst of 2 bundled photographs); the figure is 1 - the worst "
        "cosine. The corpus is `tests/compat/corpus.py`: published timm architectures (`timm:<name>`, with a "
        "checkpoint), slimmed copies of them (one block per stage, 8-128 channels: a timm model directory written "
        "by `save_for_hf`, or a factory where a directory cannot describe the model) and tiny transformers "
        "configs saved by `save_pretrained`. A family's representative is its cheapest member. "
        "`pytest tests/compat` runs the CI tier (every representative on one of ONNX Runtime and OpenVINO, one "
        "transformers representative per task on every target but ExecuTorch and LiteRT); `EDGEKIT_FULL_COMPAT=1 pytest tests/compat` "
        "runs every pair below.",
        "",
        f"Generated by `{' '.join(['PYTHONPATH=. .venv/bin/python scripts/compat_matrix.py', *argv])}`",
        f"on {when} on {cpu} ({os.cpu_count()} CPUs), in {wall_s / 60:.1f} min"
        + "".join(f"; {r}" for r in reruns) + ".",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (versions_used or versions()).items()) + ".",
        "",
        f"**{passed} of {len(results)} pairs pass ({passed / max(len(results), 1) * 100:.1f}%)**, "
        f"{sum(verdict(m, by_model[m.id][t]) == 'known' for m in models for t in by_model[m.id])} fail as declared "
        f"(below); {len(published)} published timm architectures from {len({m.family for m in published})} "
        f"families, {len(slimmed)} slimmed timm copies, {len(hf_models)} transformers architectures "
        f"({sum(m.task == 'segmentation' for m in hf_models)} segmentation)"
        + ("" if full else " (CI tier only; `--full` for every pair)") + ".",
        "",
        "| model | family | input | " + " | ".join(f"{TARGET_NAMES[t]} {PRECISION}" for t in targets) + " |",
        "|---|---|---|" + "---|" * len(targets),
    ]
    for m in models:
        row = by_model[m.id]
        if m.library == "transformers":
            name = f"transformers `{m.source.split(':')[1]}`"
        else:
            name = f"`{m.source}`" if m.published else f"slimmed `{m.family}` (`{m.source}`)"
        rep = " (rep)" if m.ci else ""
        lines.append(f"| {name}{rep} | {m.family} | {m.input_shape.split('x', 2)[2]} | "
                     + " | ".join(cell(m, row.get(t)) for t in targets) + " |")
    lines += [
        "",
        "¹ CoreML: converted to an ML Program and inspected (no op left unconverted, rank <= 5); CoreML predicts only "
        "on macOS, so parity is recorded as not measured.  ",
        "² TensorRT: no engine is built here (no GPU); the TensorRT-flavoured ONNX (TensorRT rewrites and plugin "
        "nodes) is checked in ONNX Runtime as a stand-in.  ",
        "³ A failure outside edgekit, declared in the corpus with its reason (below); the tests check it still fails "
        "that way.",
        "",
    ]
    known = [(m, k) for m in models for k in m.known]
    if known:
        lines += ["## Known failures", ""]
        lines += [f"- `{m.id}` on {TARGET_NAMES[k.target]}: {k.why}" for m, k in known]
        lines.append("")
    notes = [m for m in models if m.note]
    if notes:
        lines += ["## Input sizes", "", "64x64 unless the architecture needs its native size:", ""]
        lines += [f"- `{m.id}`: {m.note}" for m in notes]
        lines.append("")
    lines += ["## Mixing of convolution and attention", ""]
    lines += [f"- `{m.id}` ({m.family}): {m.mixes}" for m in models]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="every corpus model (default: one per family, as CI)")
    ap.add_argument("--only", nargs="+", metavar="ID", help="these corpus models, every target (implies --no-doc)")
    ap.add_argument("--json", type=Path, help="also write every pair's result here")
    ap.add_argument("--doc", type=Path, default=DOC, help=f"where the markdown goes (default {DOC.relative_to(ROOT)})")
    ap.add_argument("--no-doc", action="store_true", help="print the table, do not write the doc")
    ap.add_argument("--from-json", type=Path, nargs="+", metavar="JSON",
                    help="write the doc from --json files of earlier runs: the first a whole run, later ones models "
                         "re-run since (their pairs replace the first's)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.workdir, args.full)

    if args.from_json:
        run, reruns = merged(args.from_json)
        args.doc.write_text(render(run["results"], run["full"], run["cpu"], run["date"], run["wall_s"],
                                   ["--full"] if run["full"] else [], run.get("versions"), reruns))
        print(f"wrote {args.doc} from {', '.join(map(str, args.from_json))}")
        return 0
    if args.only:
        args.full = True  # the named models' every pair
    models = [by_id(i) for i in args.only] if args.only else [m for m in CORPUS if args.full or m.ci]
    cpu, when = cpu_name(), dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"compat matrix: {len(models)} models on {cpu} ({os.cpu_count()} CPUs), {when}", flush=True)
    results: list[dict] = []
    bad = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-compat-") as tmp:
        for i, model in enumerate(models, 1):
            got = run_model(model, Path(tmp), args.full)
            results += got
            for r in got:
                v = verdict(model, r)
                status = "pass" if r["passed"] else ("known" if v == "known" else "FAIL")
                print(f"[{i}/{len(models)}] {model.id:28s} {r['target']:9s} {status:5s} {r['seconds']:6.1f}s "
                      f"{r['reason'][:150] if not r['passed'] else ''}", flush=True)
                if v not in ("ok", "known"):
                    bad.append(f"{model.id} {r['target']}: {v}: {r['reason'][:200]}")
    wall = time.perf_counter() - start
    passed = sum(r["passed"] for r in results)
    print(f"{passed}/{len(results)} pairs pass ({passed / max(len(results), 1) * 100:.1f}%) in {wall / 60:.1f} min "
          f"on {cpu}, {when}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "date": when, "wall_s": round(wall, 1), "full": args.full,
                                         "versions": versions(), "results": results}, indent=1) + "\n")
    argv = ["--full"] if args.full else []
    text = render(results, args.full, cpu, when, wall, argv)
    if args.only or args.no_doc:
        print(text)
    else:
        args.doc.write_text(text)
        print(f"wrote {args.doc}")
    for line in bad:
        print(f"unexpected: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
