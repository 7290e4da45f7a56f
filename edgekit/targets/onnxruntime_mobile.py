"""ONNX Runtime Mobile (`edgekit export --target onnx --mobile`): the .ort format plus the operator
list for a reduced ONNX Runtime build, both written by ONNX Runtime's own converter
(``python -m onnxruntime.tools.convert_onnx_models_to_ort``).

The .ort file is optimized once here ("Fixed" style, every graph optimization that is not specific to
x86: the converter leaves out the NCHWc layout for any target platform but amd64) for ARM
(``--target_platform arm``), so the same file runs on a phone's CPU / XNNPACK execution providers and
on the desktop ONNX Runtime that checks it. ``required_operators.config`` lists the kernels the model
needs: ``build.sh --minimal_build --include_ops_by_config required_operators.config`` makes an ONNX
Runtime with only those (docs/embedding/android-onnxruntime.md).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekit.config import Precision
from edgekit.errors import EdgekitFailure
from edgekit.targets.base import BuildResult

ORT_FILE = "model.ort"
OPS_CONFIG = "required_operators.config"
CONVERTER = "onnxruntime.tools.convert_onnx_models_to_ort"
TARGET_PLATFORM = "arm"  # phones; also keeps the model free of x86-only (NCHWc) kernels


def build_mobile(onnx_file: Path, precision: Precision, runtime_version: str, notes: list[str]) -> BuildResult:
    """``out_dir/model.onnx`` -> ``out_dir/model.ort`` + ``out_dir/required_operators.config``.

    The ONNX file is removed: the mobile bundle holds what a phone app embeds. The caller's parity gate
    then runs the .ort file itself in ONNX Runtime.
    """
    out_dir = onnx_file.parent
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        shutil.move(str(onnx_file), src)
        converted = Path(tmp) / "ort"
        cmd = [sys.executable, "-m", CONVERTER, str(src), "--output_dir", str(converted),
               "--optimization_style", "Fixed", "--target_platform", TARGET_PLATFORM]
        done = subprocess.run(cmd, capture_output=True, text=True)
        ort_file, config = converted / ORT_FILE, converted / f"model.{OPS_CONFIG}"  # the converter's names
        if done.returncode != 0 or not ort_file.is_file() or not config.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise EdgekitFailure(f"ONNX Runtime's ORT-format converter failed: {lines[-1] if lines else 'no output'}")
        shutil.move(str(ort_file), out_dir / ORT_FILE)
        # the converter's header names the temporary path it read; name the bundle's file instead
        body = [ln for ln in config.read_text().splitlines() if not ln.startswith("#")]
        (out_dir / OPS_CONFIG).write_text("\n".join(["# Generated from model/s:", f"# - {ORT_FILE}", *body]) + "\n")
    ops = required_operators(out_dir / OPS_CONFIG)
    notes = [*notes, f"ONNX Runtime Mobile: {ORT_FILE} (optimized for {TARGET_PLATFORM}, Fixed style) needs "
                     f"{sum(len(v) for v in ops.values())} operator kernels; build a minimal ONNX Runtime with "
                     f"--include_ops_by_config {OPS_CONFIG}"]
    return BuildResult([ORT_FILE, OPS_CONFIG], {"name": "onnxruntime", "version": runtime_version}, precision,
                       {"providers": ["CPUExecutionProvider"], "graph_optimization_level": "ORT_ENABLE_ALL",
                        "format": "ort", "optimization_style": "Fixed", "target_platform": TARGET_PLATFORM}, notes)


def required_operators(config: Path) -> dict[str, list[str]]:
    """``required_operators.config`` -> {"ai.onnx;17": ["Conv", ...]} (lines are ``domain;opset;Op,Op``)."""
    ops = {}
    for line in config.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            domain, opset, names = line.split(";", 2)
            ops[f"{domain};{opset}"] = [n for n in names.split(",") if n]
    return ops
