"""timm:<name> --checkpoint builds the architecture the checkpoint needs: the classes of its fine-tuned
classifier, the image size of its position embedding; --num-classes must agree; a headless model or a
tag without --pretrained is said plainly."""
from __future__ import annotations

import pytest
import torch

import edgekit
from edgekit.timm_compat import import_timm


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """edgenext_xx_small fine-tuned on 10 classes (random weights: the shapes are what matter), as a state dict."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "finetuned_10_classes.pt"
    torch.save(import_timm().create_model("edgenext_xx_small", num_classes=10).state_dict(), path)
    return path


def test_classes_come_from_the_checkpoint(cli, tmp_path, finetuned):
    code, out, err = cli("export", "timm:edgenext_xx_small", "--checkpoint", finetuned, "--input-shape", "1x3x64x64",
                         "--calib-size", "2", "--out", tmp_path / "b", "--json")
    assert code == 0, err
    import json

    m = json.loads(out)
    assert m["model"]["num_classes"] == 10 and m["outputs"][0]["shape"] == [1, 10]
    assert m["model"]["origin"]["num_classes"] == "checkpoint (head.fc.weight)"
    assert m["model"]["origin"]["weights"] == f"checkpoint {finetuned}"
    assert m["model"]["labels"] == ""  # not ImageNet's any more
    assert m["parity"]["passed"] is True


def test_num_classes_that_agrees_is_fine_one_that_contradicts_is_refused(cli, tmp_path, finetuned):
    code, _, err = cli("export", "timm:edgenext_xx_small", "--checkpoint", finetuned, "--num-classes", "5",
                       "--input-shape", "1x3x64x64", "--out", tmp_path / "b")
    assert code == 2
    assert "--num-classes 5 contradicts the checkpoint: its classifier head.fc.weight has 10 outputs" in _one_line(err)
    assert not (tmp_path / "b").exists()
    bundle = edgekit.export("timm:edgenext_xx_small", "onnx", tmp_path / "ok", checkpoint=finetuned, num_classes=10,
                            input_shape="1x3x64x64", calib_size=2)
    assert bundle.manifest["model"]["num_classes"] == 10


def test_num_classes_without_a_checkpoint_builds_that_head(tmp_path):
    bundle = edgekit.export("timm:edgenext_xx_small", "onnx", tmp_path / "b", num_classes=7, input_shape="1x3x64x64",
                            calib_size=2)
    m = bundle.manifest
    assert m["model"]["num_classes"] == 7 and m["model"]["origin"]["num_classes"] == "flag"
    assert m["model"]["origin"]["weights"].startswith("random initialisation")


def test_image_size_comes_from_the_position_embedding(tmp_path):
    """A ViT fine-tuned at 96x96 (36 patches, not 196): built at 96 without --input-shape."""
    timm = import_timm()
    path = tmp_path / "vit96.pt"
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=96, num_classes=3).state_dict(), path)
    bundle = edgekit.export("timm:vit_tiny_patch16_224", "onnx", tmp_path / "b", checkpoint=path, calib_size=2)
    m = bundle.manifest
    assert m["model"]["input_shape"] == [1, 3, 96, 96] and m["preprocess"]["size"] == [96, 96]
    assert m["preprocess"]["origin"]["size"] == "checkpoint (pos_embed)"
    assert m["model"]["num_classes"] == 3 and bundle.parity["passed"] is True


def test_a_checkpoint_that_still_does_not_fit(cli, tmp_path):
    path = tmp_path / "other.pt"
    torch.save(import_timm().create_model("edgenext_x_small", num_classes=10).state_dict(), path)
    code, _, err = cli("export", "timm:edgenext_xx_small", "--checkpoint", path, "--input-shape", "1x3x64x64",
                       "--out", tmp_path / "b")
    assert code == 2 and f"checkpoint {path} does not fit the architecture: shape of" in _one_line(err)


def test_a_tag_needs_pretrained(cli, tmp_path):
    code, _, err = cli("export", "timm:edgenext_xx_small.in1k", "--out", tmp_path / "b")
    assert code == 2
    assert ("timm:edgenext_xx_small.in1k names published weights (in1k); add --pretrained to load them"
            in _one_line(err))
