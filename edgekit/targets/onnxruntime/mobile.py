"""ONNX Runtime Mobile (`edgekit export --target onnx --mobile`): the .ort format plus the operator
lists for a reduced ONNX Runtime build, all written by ONNX Runtime's own converter
(``python -m onnxruntime.tools.convert_onnx_models_to_ort``).

Two .ort files, both for ARM (``--target_platform arm``; the converter then leaves out x86-only NCHWc
kernels, so the files also run on the desktop ONNX Runtime that checks them):

- ``model.ort``, "Fixed" style: every graph optimization applied now. For the CPU execution provider,
  the default on a phone. The parity gate runs this file.
- ``model.with_runtime_opt.ort``, "Runtime" style: basic optimizations now, the rest saved and replayed
  after the execution providers claim their nodes (session option
  ``session.enable_saved_runtime_optimizations=1``). ONNX Runtime's advice for NNAPI, and edgekit's for
  XNNPACK too, whose kernels take plain ONNX ops rather than the CPU provider's fused ones.

``required_operators.config`` (and ``required_operators.with_runtime_opt.config``, which also covers
the replayed optimizations) list the kernels the model needs:
``build.sh --minimal_build extended --include_ops_by_config <config>`` makes an ONNX Runtime with only
those (docs/embedding/android-onnxruntime.md).
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
RUNTIME_OPT_FILE = "model.with_runtime_opt.ort"
RUNTIME_OPT_CONFIG = "required_operators.with_runtime_opt.config"
CONVERTER = "onnxruntime.tools.convert_onnx_models_to_ort"
TARGET_PLATFORM = "arm"  # phones; also keeps the model free of x86-only (NCHWc) kernels
REPLAY_OPTION = "session.enable_saved_runtime_optimizations"


def build_mobile(onnx_file: Path, precision: Precision, runtime_version: str, notes: list[str]) -> BuildResult:
    """``out_dir/model.onnx`` -> the two .ort files and their operator configs, in ``out_dir``.

    The ONNX file is removed: the mobile bundle holds what a phone app embeds. The caller's parity gate
    then runs ``model.ort`` in ONNX Runtime; ``model.with_runtime_opt.ort`` is load-checked here.
    """
    out_dir = onnx_file.parent
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        shutil.move(str(onnx_file), src)
        converted = Path(tmp) / "ort"
        cmd = [sys.executable, "-m", CONVERTER, str(src), "--output_dir", str(converted),
               "--optimization_style", "Fixed", "Runtime", "--target_platform", TARGET_PLATFORM]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        outputs = {ORT_FILE: ORT_FILE, RUNTIME_OPT_FILE: RUNTIME_OPT_FILE,
                   f"model.{OPS_CONFIG}": OPS_CONFIG, f"model.{RUNTIME_OPT_CONFIG}": RUNTIME_OPT_CONFIG}
        if done.returncode != 0 or not all((converted / name).is_file() for name in outputs):
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise EdgekitFailure(f"ONNX Runtime's ORT-format converter failed: {lines[-1] if lines else 'no output'}")
        for name, final in outputs.items():
            if final.endswith(".config"):  # its header names the temporary path it read: name the bundle's file
                body = [ln for ln in (converted / name).read_text().splitlines() if not ln.startswith("#")]
                model = ORT_FILE if final == OPS_CONFIG else RUNTIME_OPT_FILE
                (out_dir / final).write_text("\n".join(["# Generated from model/s:", f"# - {model}", *body]) + "\n")
            else:
                shutil.move(str(converted / name), out_dir / final)
    _check_loads(out_dir / RUNTIME_OPT_FILE)
    kernels = sum(len(v) for v in required_operators(out_dir / OPS_CONFIG).values())
    notes = [*notes, (f"ONNX Runtime Mobile: {ORT_FILE} (Fixed style, for the CPU provider) needs {kernels} operator "
                      f"kernels ({OPS_CONFIG}); {RUNTIME_OPT_FILE} is for NNAPI / XNNPACK ({REPLAY_OPTION}=1, "
                      f"{RUNTIME_OPT_CONFIG})")]
    files = [ORT_FILE, OPS_CONFIG, RUNTIME_OPT_FILE, RUNTIME_OPT_CONFIG]
    return BuildResult(files, {"name": "onnxruntime", "version": runtime_version}, precision,
                       {"providers": ["CPUExecutionProvider"], "graph_optimization_level": "ORT_ENABLE_ALL",
                        "format": "ort", "target_platform": TARGET_PLATFORM, "optimization_style": "Fixed",
                        "runtime_opt_model": RUNTIME_OPT_FILE}, notes)


def open_runtime_opt(path: Path):
    """An ONNX Runtime session on the Runtime-style file with its saved optimizations replayed."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry(REPLAY_OPTION, "1")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _check_loads(path: Path) -> None:
    try:
        open_runtime_opt(path)
    except Exception as e:  # ORT raises its own exception types
        first = str(e).strip().splitlines()[0][:400] if str(e).strip() else e.__class__.__name__
        raise EdgekitFailure(f"ONNX Runtime cannot load {path.name}: {first}") from None


def required_operators(config: Path) -> dict[str, list[str]]:
    """``required_operators.config`` -> {"ai.onnx;17": ["Conv", ...]} (lines are ``domain;opset;Op,Op``)."""
    ops = {}
    for line in config.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            domain, opset, names = line.split(";", 2)
            ops[f"{domain};{opset}"] = [n for n in names.split(",") if n]
    return ops
