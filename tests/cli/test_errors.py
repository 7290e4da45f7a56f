"""Bad input: one line naming the problem and the fix, exit 2 (usage) or 1 (failure), no traceback,
nothing left behind."""
from __future__ import annotations

import pytest
import torch

TINY = "tests.fixtures.tiny:tiny_classifier"


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _nothing_left(tmp_path, keep=()):
    left = [p.name for p in tmp_path.iterdir() if p.name not in keep]
    assert left == [], left


def test_unknown_model_suggests_near_names(cli, tmp_path):
    code, _, err = cli("export", "efficientvit_b00", "--out", tmp_path / "b")
    line = _one_line_error(err)
    assert code == 2 and "unknown model 'efficientvit_b00'" in line and "efficientvit_b0" in line
    _nothing_left(tmp_path)


def test_missing_checkpoint(cli, tmp_path):
    code, _, err = cli("export", TINY, "--checkpoint", tmp_path / "nope.pth", "--out", tmp_path / "b")
    assert code == 2 and "nope.pth does not exist" in _one_line_error(err)
    _nothing_left(tmp_path)


def test_corrupt_checkpoint(cli, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    code, _, err = cli("export", TINY, "--checkpoint", bad, "--out", tmp_path / "b")
    assert code == 2 and "corrupt or not a PyTorch file" in _one_line_error(err)
    _nothing_left(tmp_path, keep={"bad.pth"})


def test_checkpoint_with_pickled_objects_is_refused(cli, tmp_path):
    import argparse

    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, path)
    code, _, err = cli("export", TINY, "--checkpoint", path, "--out", tmp_path / "b")
    line = _one_line_error(err)
    assert code == 2 and "weights_only=True" in line and "state_dict()" in line
    _nothing_left(tmp_path, keep={"pickled.pth"})


def test_checkpoint_that_does_not_fit_names_keys(cli, tmp_path):
    from tests.fixtures.tiny import TinyClassifier

    path = tmp_path / "other.pth"
    torch.save(TinyClassifier(num_classes=7).state_dict(), path)
    code, _, err = cli("export", TINY, "--checkpoint", path, "--out", tmp_path / "b")
    line = _one_line_error(err)
    assert code == 2 and "does not fit the architecture" in line and "head.weight" in line and "(7, 32)" in line
    _nothing_left(tmp_path, keep={"other.pth"})


@pytest.mark.parametrize("shape,msg", [("1x3x22", "must be 4 positive dims"), ("1x3x100x100", "multiples of 32"),
                                       ("1x1x224x224", "3-channel"), ("axbxc", "not of the form")])
def test_impossible_input_shape(cli, tmp_path, shape, msg):
    code, _, err = cli("export", "efficientvit_b0", "--input-shape", shape, "--out", tmp_path / "b")
    assert code == 2 and msg in _one_line_error(err)
    _nothing_left(tmp_path)


def test_empty_calibration_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("export", TINY, "--calib", tmp_path / "empty", "--out", tmp_path / "b")
    assert code == 2 and "holds no images" in _one_line_error(err)
    _nothing_left(tmp_path, keep={"empty"})


def test_unreadable_calibration_image(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not a jpeg")
    code, _, err = cli("export", TINY, "--calib", tmp_path / "imgs", "--out", tmp_path / "b")
    assert code == 2 and "cannot read image" in _one_line_error(err) and "broken.jpg" in err
    _nothing_left(tmp_path, keep={"imgs"})


def test_existing_output_refused_without_force(cli, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = cli("export", TINY, "--out", out)
    assert code == 2 and "--force" in _one_line_error(err)
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = cli("export", TINY, "--out", out, "--force", "--quiet")
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()
    _nothing_left(tmp_path, keep={"b"})  # no staging or .old directories remain


@pytest.mark.parametrize("target,runtime", [("onnx", "ONNX Runtime"), ("openvino", "OpenVINO")])
def test_op_the_target_cannot_run(cli, tmp_path, target, runtime):
    code, _, err = cli("export", "tests.fixtures.tiny:unsupported_op_classifier", "--target", target,
                       "--out", tmp_path / "b")
    line = _one_line_error(err)
    assert code == 1 and f"{runtime} cannot run op acme::Frobnicate" in line and "node" in line
    _nothing_left(tmp_path)


def test_bad_factory_source(cli, tmp_path):
    code, _, err = cli("export", "no_such_pkg.mod:make", "--out", tmp_path / "b")
    assert code == 2 and "cannot import 'no_such_pkg.mod'" in _one_line_error(err)


def test_unknown_target_is_usage_error(cli, tmp_path):
    code, _, err = cli("export", TINY, "--target", "tflite", "--out", tmp_path / "b")
    assert code == 2 and "tflite" in err


def test_debug_shows_traceback(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main
    from edgekit.errors import UsageError

    with pytest.raises(UsageError):
        CliRunner().invoke(main, ["--debug", "export", "nope_model", "--out", str(tmp_path / "b")],
                           catch_exceptions=False)
