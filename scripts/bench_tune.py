#!/usr/bin/env python3
"""What `edgekit tune` picks on this machine, for docs/tune.md.

For each model (default: three zoo models trained on the digits by scripts/train_digits.py, judged on their
labeled validation folder): `edgekit tune` over ONNX Runtime and OpenVINO at every precision this CPU runs,
with a 1-point budget. The table gives what it chose and, from the same head-to-head timing run, how much faster
that is than the fp32 ONNX Runtime export (what `edgekit export` writes by default) and than a fixed choice of
ONNX Runtime int8. It also checks that the choice is the fastest candidate in budget of tune's own table.

    python scripts/train_digits.py efficientvit_b0@256 swin_tiny@256 segformer_b0   # once, cached
    python scripts/bench_tune.py
    python scripts/bench_tune.py --doc docs/tune.md --block tune
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402

MODELS = {  # source -> the digits task whose folders judge it
    "scripts.train_digits:efficientvit_b0_digits_256": "cls",
    "scripts.train_digits:swin_tiny_digits_256": "cls",
    "scripts.train_digits:segformer_b0_digits": "seg",
}


def measure(source: str, task: str, cache: Path, iterations: int) -> tuple[str, dict]:
    from scripts import train_digits as td

    from edgekit.tune.tuner import tune

    root = td.cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = tune(source, Path(tmp) / "best", targets=("onnx", "openvino"), data=root / task / "val",
                      export_options={"calib": str(root / task / "calib")}, cache=cache, iterations=iterations)
        seconds = time.perf_counter() - t0
    rows = result["rows"]
    timed = [r for r in rows if r["status"] == "timed"]
    fastest = min(timed, key=lambda r: r["latency_ms"])
    assert result["chosen"] == {"target": fastest["target"], "precision": fastest["precision"]}, result["chosen"]
    chosen = fastest

    def find(target, precision):
        return next((r for r in rows if r["target"] == target and r["precision"] == precision), None)

    def versus(row) -> str:
        if row is None or row.get("latency_ms") is None:
            return f"not timed ({row['status']}: {row.get('reason', '')[:60]})" if row else "-"
        return f"{row['latency_ms']:.2f} ms ({row['latency_ms'] / chosen['latency_ms']:.2f}x)"

    tried = ", ".join(f"{r['target']} {r['precision']}" + ("" if r["status"] == "timed" else f" ({r['status']})")
                      for r in rows if r["status"] != "skipped")
    name = source.split(":")[-1]
    line = (f"| {name} | {chosen['target']} {chosen['precision']} | {chosen['latency_ms']:.2f} | "
            f"{versus(find('onnx', 'fp32'))} | {versus(find('onnx', 'int8'))} | {chosen['metric']} "
            f"{chosen['value']:.4f} (drop {chosen['drop']:.2f}) | {tried} | {seconds:.0f} |")
    return line, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="sources (each judged on the digits task it names)")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--cache", type=Path, default=None, help="export cache [default: a fresh one]")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    header = ["| model | tune chose | its latency (ms) | fp32 ONNX Runtime (the default export) | ONNX Runtime int8 "
              "(a fixed int8 choice) | accuracy (digits validation) | candidates timed or why not | tune s |",
              "|---|---|---|---|---|---|---|---|"]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        for source in args.models.split(","):
            line, _ = measure(source, MODELS.get(source, "cls"), cache, args.iterations)
            print(line, flush=True)
            lines.append(line)
    body = "\n".join(header + lines + [
        "", "Latencies are medians of one interleaved head-to-head run of every candidate in budget (budget 1 point), "
        "at the runtime's default threads; the ratios are the other export's latency over the chosen one's. "
        "tune s: the whole run from empty caches (exports, accuracy on the validation folder, timing).",
        f"{load_avg()}.", environment(threads="the runtime's default threads")])
    print(body)
    _docblock.maybe_write(args, body)


if __name__ == "__main__":
    main()
