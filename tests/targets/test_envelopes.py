"""Shape envelopes through the real export (docs/shapes.md): one bundle for a range of sizes, the gate at every corner,
on ONNX Runtime and OpenVINO (fp32, and int8 calibrated on mixed sizes), an ExecuTorch program with dynamic height
and width, TensorRT's profile and CoreML's RangeDim checked structurally, and the runtime's refusals.

CI exports the smallest cases; ``EDGEKIT_FULL_ZOO=1`` runs every zoo segmentation model and Swin-T at the envelope
``--dynamic-hw`` chooses (half to twice the model's size) on both runtimes."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import edgekit
from edgekit.errors import UsageError

FULL = bool(os.environ.get("EDGEKIT_FULL_ZOO"))
SMALL = "1x3x128x128:1x3x192x192:1x3x256x256"


def _corners(bundle) -> dict:
    return {c["label"]: c for c in bundle.manifest["parity"]["corners"]}


@pytest.fixture(scope="module")
def seg_envelope(tmp_path_factory):
    return edgekit.export("efficientvit_b0_seg", "onnx", tmp_path_factory.mktemp("env") / "seg", shapes=SMALL)


def test_one_bundle_passes_the_gate_at_every_corner(seg_envelope):
    m = seg_envelope.manifest
    assert m["inputs"][0]["shape"] == [1, 3, "height", "width"]
    assert m["outputs"][0]["shape"] == [1, 19, "output_height", "output_width"]  # channels stay fixed
    assert m["shapes"]["min"] == [1, 3, 128, 128] and m["shapes"]["max"] == [1, 3, 256, 256]
    assert m["shapes"]["step"] == 32 and m["shapes"]["rule"]["family"] == "efficientvit"
    corners = _corners(seg_envelope)
    assert set(corners) == {"min", "opt", "max", "between"}
    for c in corners.values():
        assert c["passed"] and c["cosine_min"] >= 0.99999 and c["images"] == 6, c
    # the main figures are the OPT corner's
    assert corners["opt"]["cosine_min"] == m["parity"]["cosine_min"]


def test_the_runtime_takes_every_size_inside_and_refuses_the_rest(seg_envelope):
    image = np.random.default_rng(0).integers(0, 255, (224, 160, 3), dtype=np.uint8)
    resized = edgekit.runtime.load(seg_envelope.path)
    assert resized(image).shape == (1, 19, 24, 24)  # resized to OPT 192x192, stride 8
    kept = edgekit.runtime.load(seg_envelope.path, keep_size=True)
    assert kept(image).shape == (1, 19, 28, 20)  # 224x160 as it is
    for shape, words in (((1, 3, 288, 192), "input height 288 is outside the bundle's envelope 128..256"),
                         ((1, 3, 192, 200), "not a multiple of 32"), ((2, 3, 192, 192), "input batch 2")):
        with pytest.raises(UsageError, match=words):
            resized.outputs(np.zeros(shape, np.float32))


def test_int8_calibrates_on_mixed_sizes_and_holds_at_every_corner(tmp_path):
    b = edgekit.export("efficientvit_b0_seg", "onnx", tmp_path / "q", precision="int8", shapes=SMALL)
    calibration = b.manifest["quantization"]["calibration"]
    assert "at the envelope's corners in turn (128x128, 192x192, 256x256, 160x192)" in calibration["source"]
    corners = _corners(b)
    assert len(corners) == 4 and all(c["passed"] for c in corners.values()), corners


def test_swin_pads_windows_inside_the_graph(tmp_path):
    """Swin-T at 224 (every stage grid a multiple of 7; the last one exactly one window, so its shift is dropped)
    and at a padded size where the grids are not multiples of 7 (64x56 at stage 1): one graph for both."""
    b = edgekit.export("swin_tiny", "onnx", tmp_path / "swin", shapes="1x3x224x224:1x3x224x224:1x3x256x256")
    corners = _corners(b)
    assert set(corners) == {"min/opt", "max", "padded"}
    assert corners["padded"]["shape"][2] % 224 or corners["padded"]["shape"][3] % 224
    assert all(c["passed"] and c["cosine_min"] >= 0.99999 for c in corners.values()), corners


def test_tensorrt_profile_is_the_envelope(tmp_path):
    b = edgekit.export("efficientvit_b0_seg", "trt", tmp_path / "trt", shapes=SMALL,
                       target_options={"onnx_only": True})
    config = json.loads((b.path / "build" / "config.json").read_text())
    assert config["profiles"] == [{"name": "input", "min": [1, 3, 128, 128], "opt": [1, 3, 192, 192],
                                   "max": [1, 3, 256, 256]}]
    script = (b.path / "trtexec.sh").read_text()
    assert "--minShapes=input:1x3x128x128 --optShapes=input:1x3x192x192 --maxShapes=input:1x3x256x256" in script
    # the TensorRT-flavoured ONNX is checked at the corners in ONNX Runtime, its stand-in
    assert all(c["passed"] for c in _corners(b).values())


def test_coreml_converts_with_a_range_of_sizes(tmp_path):
    pytest.importorskip("coremltools")
    import coremltools as ct

    b = edgekit.export("efficientvit_b0_seg", "coreml", tmp_path / "cml", shapes=SMALL)
    assert b.manifest["runtime"]["flexible_shape"] == "range"
    assert b.manifest["inputs"][0]["shape"] == [1, 3, "height", "width"]
    image = ct.utils.load_spec(str(b.path / "model.mlpackage")).description.input[0].type.imageType
    assert (image.height, image.width) == (192, 192)  # the default is OPT
    assert (image.imageSizeRange.heightRange.lowerBound, image.imageSizeRange.heightRange.upperBound) == (128, 256)
    assert (image.imageSizeRange.widthRange.lowerBound, image.imageSizeRange.widthRange.upperBound) == (128, 256)


def test_executorch_program_for_a_range_of_sizes(tmp_path):
    pytest.importorskip("executorch", reason="the executorch extra is not installed")
    b = edgekit.export("tests.fixtures.tiny:tiny_segmenter", "executorch", tmp_path / "et",
                       shapes="1x3x32x32:1x3x64x64:1x3x128x128")
    assert b.manifest["inputs"][0]["shape"] == [1, 3, "height", "width"]
    corners = _corners(b)
    assert len(corners) == 4 and all(c["passed"] and c["cosine_min"] >= 0.99999 for c in corners.values()), corners
    runner = edgekit.runtime.load(b.path, keep_size=True)
    assert runner(np.zeros((96, 40, 3), np.uint8)).shape == (1, 5, 24, 10)


@pytest.mark.parametrize("args,words", [
    ({"source": "efficientformerv2_s1", "dynamic_hw": True},
     "the size is fixed by the attention-bias tables of Attention2d"),
    ({"source": "efficientvit_b0", "shapes": "1x3x256x256:1x3x224x224:1x3x512x512"}, "MIN <= OPT <= MAX"),
    ({"source": "efficientvit_b0", "shapes": "1x3x200x200:1x3x224x224:1x3x512x512"}, "200 is not a multiple of 32"),
    ({"source": "efficientvit_b0", "target": "litert", "dynamic_hw": True}, "--target litert takes one input size"),
    ({"source": "swin_tiny", "shapes": "1x3x160x160:1x3x224x224:1x3x448x448"}, "below 224, the smallest side"),
    ({"source": "swin_tiny", "target": "executorch", "dynamic_hw": True},
     "ExecuTorch program for a range of sizes of a windowed-attention model"),
    ({"source": "efficientvit_b0_seg", "target": "executorch", "precision": "int8", "shapes": SMALL},
     "int8 ExecuTorch programs take one size here"),
])
def test_bad_envelopes_are_refused_before_anything_is_written(tmp_path, args, words):
    out = tmp_path / "b"
    with pytest.raises(UsageError, match=words):
        edgekit.export(out=out, **{"target": "onnx", **args})
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="every zoo segmentation model and Swin-T at --dynamic-hw: EDGEKIT_FULL_ZOO=1")
@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("name", ["efficientvit_b0_seg", "efficientvit_b1_seg", "efficientvit_b1_seg_ade",
                                  "segformer_b0", "segformer_b0_cityscapes", "segformer_b1", "seaformer_small_seg",
                                  "nextvit_small_seg", "swin_tiny_seg", "swin_tiny"])
def test_every_zoo_segmenter_and_swin_over_the_planned_envelope(tmp_path, name, target):
    b = edgekit.export(name, target, tmp_path / "b", dynamic_hw=True, calib_size=2)
    corners = _corners(b)
    assert len(corners) >= 3 and all(c["passed"] for c in corners.values()), corners
