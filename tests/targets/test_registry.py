"""The target registry: each target declares the options it reads and the `edgekit export` flags that set them;
an option of another target is refused with that target's name, from the CLI and the Python API alike."""
from __future__ import annotations

from pathlib import Path

import pytest

import edgekit
from edgekit.config import Target
from edgekit.errors import UsageError
from edgekit.targets import OPTIONS, get_backend, options_from_flags, parse_options, target_flags
from edgekit.targets.base import TargetBackend

TINY = "tests.fixtures.tiny:tiny_classifier"


@pytest.mark.parametrize("target", list(Target))
def test_each_target_declares_its_options(target):
    options = OPTIONS[target]
    backend = get_backend(target)
    assert isinstance(backend, TargetBackend) and backend.target is target and backend.Options is options
    assert backend.options == options.parse({})  # nothing given: the defaults
    assert {f.key for f in options.FLAGS} <= set(options.KEYS)


def test_every_key_belongs_to_one_target():
    keys = [k for options in OPTIONS.values() for k in options.KEYS]
    assert len(keys) == len(set(keys)), keys
    # --shapes is every target's (a shape envelope, edgekit export's own flag); TensorRT's profile is made from it
    assert sorted(f.name for _, f in target_flags()) == [
        "--coreml-output", "--delegate", "--device", "--dla-core", "--hardware-compatibility", "--mobile", "--onnx-only",
        "--ort-optimization", "--timing-cache", "--version-compatible", "--workspace"]


def test_options_from_flags_keeps_what_was_given():
    values = {f.key: None for _, f in target_flags()} | {"mobile": False, "onnx_only": True, "dla_core": 0,
                                                         "timing_cache": Path("cache/t.cache")}
    assert options_from_flags(Target.TRT, values) == {"onnx_only": True, "dla_core": 0, "timing_cache": "cache/t.cache"}
    with pytest.raises(UsageError, match="^--device applies to --target openvino, not trt$"):
        options_from_flags(Target.TRT, values | {"device": "GPU"})


def test_parse_refuses_other_targets_keys_and_unknown_ones():
    assert parse_options(Target.OPENVINO, {"device": "GPU", "mobile": False}).device == "GPU"
    with pytest.raises(UsageError, match="^--coreml-output applies to --target coreml, not onnx$"):
        parse_options(Target.ONNX, {"coreml_output": "labels"})
    with pytest.raises(UsageError, match="^unknown target option 'nope'; --target onnx reads mobile, ort_optimization$"):
        parse_options(Target.ONNX, {"nope": 1})
    assert parse_options(Target.ONNX, {"ort_optimization": "basic"}).graph_optimization_level == "ORT_ENABLE_BASIC"
    with pytest.raises(UsageError, match="^--ort-optimization applies to the .onnx bundle; a --mobile bundle"):
        parse_options(Target.ONNX, {"ort_optimization": "basic", "mobile": True})
    with pytest.raises(UsageError, match="^--ort-optimization 'fast' is not a level; choose one of all, extended"):
        parse_options(Target.ONNX, {"ort_optimization": "fast"})


def test_the_api_refuses_another_targets_option_before_anything_runs(tmp_path):
    with pytest.raises(UsageError, match="--workspace applies to --target trt, not onnx"):
        edgekit.export(TINY, "onnx", tmp_path / "b", target_options={"workspace": "2G"})
    assert not (tmp_path / "b").exists()


def test_export_help_lists_every_target_flag(cli):
    code, out, _ = cli("export", "--help")
    assert code == 0
    for _, flag in target_flags():
        assert flag.name in out


@pytest.mark.parametrize("target", list(Target))
def test_each_int8_target_declares_its_plan(target):
    from edgekit.config import Precision
    from edgekit.quant.islands import REASONS
    from edgekit.quant.plan import Int8Plan, Scoring

    backend = get_backend(target)
    assert (Precision.INT8 in backend.precisions) == isinstance(backend.int8, Int8Plan)
    assert isinstance(backend.int8.scoring, Scoring) and callable(backend.int8.recipes)
    assert set(backend.int8.island_rules) <= set(REASONS)


def test_quantization_code_names_no_target():
    """What differs per target is in its plan; edgekit/quant/ reads the plan and never branches on a target."""
    import re

    quant = Path(edgekit.__file__).parent / "quant"
    branch = re.compile(r"Target\.[A-Z]+|\btarget (?:is|==|in) ")
    named = {p.name: branch.findall(p.read_text()) for p in sorted(quant.glob("*.py"))}
    assert {name: found for name, found in named.items() if found} == {}
