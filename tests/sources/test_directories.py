"""Model directories as sources: transformers' save_pretrained (classification, semantic and universal
segmentation) and timm's save_for_hf, each with its labels and preprocessing, weights loaded strictly and
without unpickling; and every way such a directory can be wrong, as one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekit
from tests.sources.models import segformer_dir, timm_dir, vit_classifier_dir, write_preprocessor

pytest.importorskip("transformers")


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_transformers_classifier_with_its_labels_and_preprocessing(tmp_path):
    src = vit_classifier_dir(tmp_path / "vit")
    bundle = edgekit.export(str(src), "onnx", tmp_path / "b", calib_size=2)
    m = bundle.manifest
    assert m["model"]["task"] == "classification" and m["model"]["num_classes"] == 3
    assert m["model"]["labels"] == ["class 0", "class 1", "class 2"]
    assert m["model"]["input_shape"] == [1, 3, 32, 32]
    pre = m["preprocess"]
    assert pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.25, 0.25, 0.25] and pre["resize"] == "bicubic"
    assert set(pre["origin"].values()) == {"model files (preprocessor_config.json)"}
    assert m["model"]["origin"]["weights"] == f"model directory {src}"
    assert bundle.parity["passed"] is True and bundle.parity["cosine_min"] > 0.99999

    # the bundle computes what transformers computes on the same pixels
    from transformers import ViTForImageClassification

    runner = edgekit.runtime.load(tmp_path / "b")
    image = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    x = runner.preprocess(image)
    with torch.no_grad():
        want = ViTForImageClassification.from_pretrained(src).eval()(pixel_values=torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(runner(image), want, rtol=1e-4, atol=1e-5)  # fp32 ORT vs PyTorch
    assert runner.label(int(want.argmax())) == f"class {int(want.argmax())}"


def test_transformers_semantic_segmentation(tmp_path):
    bundle = edgekit.export(str(segformer_dir(tmp_path / "seg")), "openvino", tmp_path / "b", calib_size=2)
    m = bundle.manifest
    assert m["model"]["task"] == "segmentation" and m["model"]["num_classes"] == 5
    assert m["model"]["output_stride"] == 4 and m["model"]["size_divisor"] == 32
    assert m["outputs"][0]["shape"] == [1, 5, 16, 16]
    assert m["model"]["labels"] == ""  # transformers' LABEL_i placeholders are not labels
    assert bundle.parity["passed"] is True


def test_universal_segmentation_is_transformers_semantic_post_processing():
    """Mask2Former's exported scores give the labels transformers' own semantic post-processing gives."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
    from transformers.models.mask2former.image_processing_pil_mask2former import Mask2FormerImageProcessorPil

    from edgekit.sources.hf import SemanticFromQueries

    torch.manual_seed(0)
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, hidden_dim=32, mask_feature_size=32, feature_size=32,
                               num_queries=8, encoder_layers=1, decoder_layers=2, encoder_feedforward_dim=64,
                               dim_feedforward=64, num_attention_heads=2, num_labels=4)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        scores = SemanticFromQueries(model)(x)
        outputs = model(pixel_values=x)
    assert scores.shape == (2, 4, 16, 16)  # the no-object class is dropped; 1/4 of the input
    want = Mask2FormerImageProcessorPil().post_process_semantic_segmentation(outputs, target_sizes=[(16, 16)] * 2)
    assert torch.equal(scores.argmax(1), torch.stack(want))


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch_model.bin"])
def test_timm_directory(tmp_path, safe):
    src = timm_dir(tmp_path / "t", num_classes=4, safe=safe, labels=["a", "b", "c", "d"])
    bundle = edgekit.export(str(src), "onnx", tmp_path / "b", input_shape="1x3x64x64", calib_size=2)
    m = bundle.manifest
    assert m["model"]["num_classes"] == 4 and m["model"]["labels"] == ["a", "b", "c", "d"]
    assert m["preprocess"]["mean"] == [0.5, 0.5, 0.5] and m["preprocess"]["origin"]["mean"] == "model files (config.json)"
    assert m["preprocess"]["resize"] == "bicubic"  # edgenext's pretrained_cfg
    assert bundle.parity["passed"] is True


def test_a_flag_beats_the_model_files(tmp_path):
    src = timm_dir(tmp_path / "t")
    bundle = edgekit.export(str(src), "onnx", tmp_path / "b", input_shape="1x3x64x64", calib_size=2,
                            std="0.2,0.2,0.2", resize="nearest")
    pre = bundle.manifest["preprocess"]
    assert pre["std"] == [0.2, 0.2, 0.2] and pre["resize"] == "nearest" and pre["mean"] == [0.5, 0.5, 0.5]
    assert pre["origin"] == {"size": "flag (--input-shape)", "mean": "model files (config.json)", "std": "flag",
                             "resize": "flag"}


@pytest.mark.parametrize("name, divisor", [("ViTConfig", 16), ("SwinConfig", 32), ("SegformerConfig", 32),
                                           ("HieraConfig", 32), ("ConvNextConfig", 32), ("Dinov2Config", 14)])
def test_size_divisor(name, divisor):
    """What H and W must be multiples of: a ViT's patch, a hierarchy's total stride (Hiera's patch_size is its
    patch embedding's kernel, 7; it strides by 4 and pools 2x three times)."""
    import transformers

    from edgekit.sources.hf import size_divisor

    assert size_divisor(getattr(transformers, name)()) == divisor


# ------------------------------------------------------------------------------------------- bad directories

def _vit(tmp_path):
    return vit_classifier_dir(tmp_path / "vit")


def _no_config(tmp_path):
    d = _vit(tmp_path)
    (d / "config.json").unlink()
    return d, "has no config.json; edgekit reads directories written by transformers' save_pretrained"


def _no_weights(tmp_path):
    d = _vit(tmp_path)
    (d / "model.safetensors").unlink()
    return d, "has no weights (model.safetensors, pytorch_model.bin or a sharded index)"


def _unknown_type(tmp_path):
    d = _vit(tmp_path)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "model_type": "no_such_model", "architectures": []}))
    return d, "model_type 'no_such_model' is not a vision model edgekit exports; supported: beit, "


def _text_model(tmp_path):
    d = _vit(tmp_path)
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    return d, "BertForMaskedLM is not a model edgekit exports"


def _weights_do_not_fit(tmp_path):
    d = _vit(tmp_path)
    config = json.loads((d / "config.json").read_text())
    config.update(num_labels=7, id2label={str(i): str(i) for i in range(7)}, label2id={str(i): i for i in range(7)})
    (d / "config.json").write_text(json.dumps(config))
    return d, "do not fit its config.json"


def _bad_preprocessor_size(tmp_path):
    d = _vit(tmp_path)
    write_preprocessor(d, {"size": {"height": 36, "width": 36}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    return d, "preprocessor_config.json: size 36x36 is not a multiple of 8, the size divisor of vit; pass --input-shape 1x3x32x32"


def _pickled_bin(tmp_path):
    import argparse

    d = timm_dir(tmp_path / "t", safe=False)
    torch.save({"state_dict": torch.load(d / "pytorch_model.bin", weights_only=True), "args": argparse.Namespace()},
               d / "pytorch_model.bin")
    return d, "holds pickled Python objects beyond tensors, which edgekit will not unpickle"


def _timm_weights_do_not_fit(tmp_path):
    d = timm_dir(tmp_path / "t", num_classes=4)
    config = json.loads((d / "config.json").read_text())
    config["num_classes"] = 6
    config["model_args"]["num_classes"] = 6
    (d / "config.json").write_text(json.dumps(config))
    return d, "its classifier head.fc.weight has 4 outputs, config.json says num_classes 6"


def _saved_for_another_size(tmp_path):
    d = timm_dir(tmp_path / "t", arch="efficientvit_m0")  # attention biases sized for 224x224
    return d, "it was saved for 1x3x224x224 (config.json): its size-dependent tensors need that input shape"


def _labels_contradict(tmp_path):
    d = timm_dir(tmp_path / "t", num_classes=4)
    config = json.loads((d / "config.json").read_text())
    config["label_names"] = ["a", "b"]
    (d / "config.json").write_text(json.dumps(config))
    return d, "label_names has 2 entries for 4 classes"


BAD = {f.__name__.strip("_"): f for f in (_no_config, _no_weights, _unknown_type, _text_model, _weights_do_not_fit,
                                          _bad_preprocessor_size, _pickled_bin, _timm_weights_do_not_fit,
                                          _labels_contradict, _saved_for_another_size)}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_directory_is_one_line(cli, tmp_path, case):
    directory, words = BAD[case](tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("export", directory, "--out", out / "b", "--calib-size", "2",
                       *(("--input-shape", "1x3x64x64") if case == "saved_for_another_size" else ()))
    line = _one_line(err)
    assert code == 2 and words in line, line
    assert not out.exists()
