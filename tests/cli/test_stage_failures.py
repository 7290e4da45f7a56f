"""No traceback without --debug: an unexpected exception in any stage of `edgekit export` ends as one line,
``error: <stage> failed: <ExceptionType>: <first line> (run with --debug for the traceback)``, exit code 1,
and nothing left where the bundle would have gone. Each stage gets an injected failure."""
from __future__ import annotations

import pytest

TINY = "tests.fixtures.tiny:tiny_classifier"


def _boom(*_args, **_kwargs):
    raise RuntimeError("injected failure\nsecond line that must not be printed")


# stage -> (what to patch, extra export arguments that reach that stage)
STAGES = {
    "load": ("edgekit.pipeline.load_source", ()),
    "prepare": ("edgekit.pipeline.prepare_for_deploy", ()),
    "export": ("edgekit.pipeline.export_onnx", ()),
    "rewrite": ("edgekit.pipeline.apply_rewrites", ()),
    "quantize": ("edgekit.pipeline.quantize_onnx_for_target", ("--precision", "int8")),
    "build": ("edgekit.targets.onnxruntime.backend.OnnxRuntimeBackend.build", ()),
    "parity": ("edgekit.pipeline.run_parity", ()),
    "bundle": ("edgekit.pipeline.write_manifest", ()),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_failing_stage_is_one_line(cli, tmp_path, monkeypatch, stage):
    target, extra = STAGES[stage]
    monkeypatch.setattr(target, _boom)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = cli("export", TINY, "--out", out / "deep" / "b", "--calib-size", "2", *extra)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1, err
    assert errors == [f"error: {stage} failed: RuntimeError: injected failure (run with --debug for the traceback)"], err
    assert "Traceback" not in err + stdout and "second line" not in err
    assert list(out.iterdir()) == [], "something was left behind"  # not even the folders made for --out


def test_debug_shows_the_original_exception(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgekit.cli import main
    from edgekit.errors import StageFailure

    monkeypatch.setattr("edgekit.pipeline.export_onnx", _boom)
    with pytest.raises(StageFailure) as info:
        CliRunner().invoke(main, ["--debug", "export", TINY, "--out", str(tmp_path / "b"), "--calib-size", "2"],
                           catch_exceptions=False)
    assert info.value.stage == "export" and isinstance(info.value.__cause__, RuntimeError)


def test_an_unexpected_error_outside_the_pipeline_is_one_line_too(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("edgekit.manifest.read_manifest", _boom)
    code, _, err = cli("inspect", tmp_path)
    assert code == 1
    assert err.strip() == "error: inspect failed: RuntimeError: injected failure (run with --debug for the traceback)"
