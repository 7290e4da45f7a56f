#!/usr/bin/env python3
"""How long a 3-model x 2-target x 3-precision `edgekit sweep` takes here: on the local process pool, then on
a two-worker local Ray cluster (started here: two CPUs and the resource `device:local`), each from empty
caches, same spec. Prints the wall time, the cells by status, and each run's best.md.

    python scripts/train_digits.py efficientvit_b0 segformer_b0 tiny_classifier   # once, cached
    python scripts/bench_sweep.py
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bench import environment, load_avg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
models:
  - scripts.train_digits:tiny_classifier_digits
  - scripts.train_digits:efficientvit_b0_digits
  - scripts.train_digits:swin_tiny_digits
targets: [onnx, openvino]
precisions: [fp32, fp16, int8]
data: {data}
calib: {calib}
iterations: 30
"""


def run(spec_path: Path, out: Path, executor: str) -> tuple[float, dict]:
    import os

    from edgekit.tune.sweep import load_spec, run_sweep

    # empty caches for each run (edgekit's calibration-range cache is per machine otherwise): neither run
    # starts with what the other computed; set before Ray starts, so its workers inherit them
    os.environ["EDGEKIT_CALIB_CACHE"] = str(out.parent / f"{executor}-calib-cache")
    start = time.perf_counter()
    result = run_sweep(load_spec(spec_path), out, executor)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executors", default="local,ray")
    args = ap.parse_args()
    from scripts import train_digits as td

    lines = ["| executor | wall s | cells | by status |", "|---|---|---|---|"]
    bests = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.yaml"
        spec.write_text(SPEC.format(data=td.cache_dir() / "cls" / "val", calib=td.cache_dir() / "cls" / "calib"))
        for executor in args.executors.split(","):
            if executor == "ray":
                import ray

                calib_cache = str(Path(tmp) / "ray-calib-cache")
                ray.init(num_cpus=2, resources={"device:local": 1}, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "EDGEKIT_CALIB_CACHE": calib_cache}})
            try:
                seconds, result = run(spec, Path(tmp) / executor, executor)
            finally:
                if executor == "ray":
                    ray.shutdown()
            counts = Counter(r["status"] for r in result["rows"])
            line = (f"| {executor} | {seconds:.0f} | {len(result['rows'])} | "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} |")
            print(line, flush=True)
            lines.append(line)
            bests.append(f"{executor}:\n" + (Path(tmp) / executor / "best.md").read_text())
    print("\n".join(lines))
    print("\n".join(bests))
    print(f"{load_avg()}.\n" + environment(threads="the runtime's default threads"))


if __name__ == "__main__":
    main()
