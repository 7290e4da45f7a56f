#!/usr/bin/env python3
"""The worked example of docs/backbones.md, measured: a zoo backbone's stage maps exported as a features bundle.

For ``--model`` with ``--features`` at ``--input-shape`` (default EfficientViT-B1, stages 1,2,3, 1x3x512x512):

- edgekit: ``edgekit.export(model, target, features=..., input_shape=...)`` for ONNX Runtime and OpenVINO (fp32,
  rewrites on, parity gate per output on the bundled photographs);
- naive:   the same with ``rewrite=False`` (plain torch.onnx.export + onnxslim), what a user exporting timm's
  ``features_only`` model by hand gets;
- PyTorch eager, the deploy-mode model returning the same maps.

Prints two tables: each output's parity against PyTorch (shape, stride, channels, worst-image cosine, max abs
error / output range, rel L2) per runtime; and, at each thread count, the latency of every candidate timed in
one process by edgekit's timing harness (edgekit/engines/timing.py: run by run in alternation on the same
photograph, PyTorch timed twice as the A/A control), with PyTorch / candidate and naive / edgekit ratios and
their 95% bootstrap intervals. With ``--cpp``, the C++ runtime (edgekit-run, OpenVINO backend) is timed on the
edgekit OpenVINO bundle too (its own median over ``--rounds`` runs, not interleaved) and feature-head is run on
its three maps.

    python scripts/bench_backbone.py
    python scripts/bench_backbone.py --threads 1,2 --rounds 30 --cpp --doc docs/backbones.md --block backbone
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _docblock  # noqa: E402
from _bench import environment, load_avg  # noqa: E402

RUNTIMES = ("onnx", "openvino")


def export_all(model: str, features: str, shape: str, out: Path) -> dict:
    import edgekit

    bundles = {}
    for target in RUNTIMES:
        bundles[f"edgekit {target}"] = edgekit.export(model, target, out / f"edgekit-{target}", features=features,
                                                      input_shape=shape, calib_size=6)
        bundles[f"naive {target}"] = edgekit.export(model, target, out / f"naive-{target}", features=features,
                                                    input_shape=shape, rewrite=False, verify=False)
    return bundles


def parity_table(bundles: dict) -> str:
    lines = ["| runtime | output | shape | stride | channels | cosine min | max abs / range | rel L2 | gate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for target in RUNTIMES:
        m = bundles[f"edgekit {target}"].manifest
        parity = m["parity"]
        for o in m["outputs"]:
            f = parity["outputs"][o["name"]]
            lines.append(f"| {target} | {o['name']} | {'x'.join(map(str, o['shape']))} | {o['stride']} | "
                         f"{o['channels']} | {f['cosine_min']:.6f} | {f['max_abs_rel']:.1e} | {f['rel_l2']:.1e} | "
                         f"{'pass' if parity['passed'] else 'FAIL'} |")
    images = bundles[f"edgekit {RUNTIMES[0]}"].manifest["parity"]["images"]
    lines.append("")
    lines.append(f"Parity per output against PyTorch fp32 on the {images} bundled photographs (the gate: cosine >= "
                 f"0.99999 and max abs error <= 1e-3 of the output's range, every output; random weights).")
    return "\n".join(lines)


def timing_table(model: str, features: str, shape: str, bundles: dict, threads: list[int], rounds: int) -> str:
    import torch

    import edgekit
    from edgekit.calib import load_image_sets
    from edgekit.engines.timing import compare, interleave, ratio
    from edgekit.sources import load_source
    from edgekit.config import SourceOptions, parse_features, parse_shape
    from edgekit.stages.onnx_export import prepare_for_deploy

    src = load_source(model, None, parse_shape(shape), SourceOptions(features=parse_features(features)))
    eager = prepare_for_deploy(src.model)
    x = load_image_sets(None, src.spec.preprocess, 1, int8=False).parity.inputs[0]
    xt = torch.from_numpy(x)
    lines = ["| threads | candidate | median ms | PyTorch / candidate [95% CI] | naive / edgekit [95% CI] |",
             "|---|---|---|---|---|"]
    notes = []
    for n in threads:
        torch.set_num_threads(n)
        runners = {name: edgekit.runtime.load(b.path, threads=n) for name, b in bundles.items()}
        try:
            with torch.no_grad():
                samples = interleave({"PyTorch eager": lambda: eager(xt),
                                      **{name: (lambda r=r: r.outputs(x)) for name, r in runners.items()}},
                                     baseline="PyTorch eager", rounds=rounds, warmup=3, settle=1)
        finally:
            for r in runners.values():
                r.close()
        result = compare(samples, "PyTorch eager")
        for row in result.rows:
            vs_naive = ""
            if row.name.startswith("edgekit "):
                naive = row.name.replace("edgekit", "naive")
                vs_naive = ratio(samples[naive].wall_ms, samples[row.name].wall_ms).cell()
            vs_torch = "baseline" if row.ratio is None else row.ratio.cell()
            lines.append(f"| {n} | {row.name} | {row.median_ms:.2f} | {vs_torch} | {vs_naive} |")
        notes.append(f"{n} thread(s): A/A control {result.noise.text()}, noise floor +-{result.noise_floor * 100:.1f}%")
    lines.append("")
    lines.append("Median wall ms of a whole inference returning all three maps, timed in alternation in one process "
                 f"({rounds} rounds, order shuffled each round); " + "; ".join(notes) + f"; {load_avg()}.")
    return "\n".join(lines)


def cpp_rows(bundle: Path, threads: list[int], rounds: int, workdir: Path) -> str:
    """edgekit-run's own median on the OpenVINO bundle, and feature-head on its maps (random 4-class head)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.cpp.build import build

    from edgekit.calib import bundled_images_dir

    tools = build()
    image = bundled_images_dir() / "coffee.png"
    lines = ["| threads | C++ edgekit-run (OpenVINO) preprocess ms | infer ms | runs |", "|---|---|---|---|"]
    for n in threads:
        done = subprocess.run([str(tools.edgekit_run), str(bundle), str(image), "--json", "--repeat", str(rounds),
                               "--threads", str(n)], capture_output=True, text=True, check=True, timeout=600)
        lat = json.loads(done.stdout)["latency_ms"]
        lines.append(f"| {n} | {lat['preprocess']:.2f} | {lat['infer']:.2f} | {lat['runs']} |")
    import edgekit
    from edgekit.calib import read_image

    runner = edgekit.runtime.load(bundle)
    maps = runner(read_image(image))
    runner.close()
    rng, k, parts = np.random.default_rng(0), 4, []
    for name, fmap in maps.items():  # random 1x1 convolutions, biased so that each class scores 0 on average
        c = fmap.shape[1]
        weight = rng.standard_normal((k, c)) / np.sqrt(c)
        parts += [weight.ravel(), -(weight @ fmap[0].reshape(c, -1)).mean(1)]
    head = workdir / "head.f32"
    np.concatenate(parts).astype("<f4").tofile(head)
    names = ",".join(maps)
    done = subprocess.run([str(tools.feature_head), str(bundle), str(image), str(head), "--classes", str(k),
                           "--maps", names], capture_output=True, text=True, check=True, timeout=600)
    res = json.loads(done.stdout)
    counts = np.bincount(np.asarray(res["labels"]), minlength=k)
    lines.append("")
    lines.append(f"feature-head on {names}: a {res['height']}x{res['width']} label map over {k} classes "
                 f"(pixels per class {', '.join(map(str, counts))}; a random head centred on this image, so the labels "
                 f"mean nothing: it shows the maps reaching a head of your own by name).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientvit_b1")
    ap.add_argument("--features", default="1,2,3")
    ap.add_argument("--input-shape", default="1x3x512x512")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--cpp", action="store_true", help="also time the C++ runtime and run feature-head")
    _docblock.add_arguments(ap)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        bundles = export_all(args.model, args.features, args.input_shape, Path(tmp))
        parts = [f"**{args.model} --features {args.features} --input-shape {args.input_shape}**", "",
                 parity_table(bundles), "",
                 timing_table(args.model, args.features, args.input_shape, bundles, threads, args.rounds)]
        if args.cpp:
            parts += ["", cpp_rows(bundles["edgekit openvino"].path, threads, args.rounds, Path(tmp))]
    parts += ["", environment(threads="threads per row")]
    body = "\n".join(parts)
    print(body)
    _docblock.maybe_write(args, body)


if __name__ == "__main__":
    main()
