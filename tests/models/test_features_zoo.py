"""--features on every zoo family: one model per family exports its stage maps as named outputs on ONNX Runtime
and OpenVINO, each gated against PyTorch (tests/test_features.py covers the rest of the features task).

The default suite runs two families (a hybrid conv-attention one and a conv one); ``EDGEKIT_FULL_FEATURES=1``
runs all eight (about 3 minutes on 2 cores), as before a release or after touching a family's stages."""
from __future__ import annotations

import os

import pytest

import edgekit

# one zoo model per family, at a small input (SIZE, SeaFormer twice that: its last stage is stride 64); what
# `--features` gives for it: (stage, channels, stride) per output
FAMILIES = {
    "efficientformerv2_s1": [(1, 48, 8), (2, 120, 16), (3, 224, 32)],
    "efficientvit_b0": [(1, 32, 8), (2, 64, 16), (3, 128, 32)],
    "fastvit_t8": [(1, 96, 8), (2, 192, 16), (3, 384, 32)],
    "mit_b0": [(1, 64, 8), (2, 160, 16), (3, 256, 32)],
    "nextvit_small": [(1, 256, 8), (2, 512, 16), (3, 1024, 32)],
    "repvit_m1_1": [(1, 128, 8), (2, 256, 16), (3, 512, 32)],
    "seaformer_small": [(0, 48, 8), (1, 160, 32), (2, 192, 64)],
    "swin_tiny": [(1, 192, 8), (2, 384, 16), (3, 768, 32)],
}
SIZE = 32
DEFAULT = {"efficientvit_b0", "fastvit_t8"}
FULL = os.environ.get("EDGEKIT_FULL_FEATURES") == "1"


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if FULL or n in DEFAULT else pytest.mark.skip(
    reason="the whole-family sweep runs with EDGEKIT_FULL_FEATURES=1")) for n in FAMILIES])
def test_every_family_exports_its_stage_maps_on_both_runtimes(name, tmp_path):
    """--features picks stage maps from the family's forward_intermediates: named stage<i>, NCHW, their stride and
    channels in the manifest, each output gated against PyTorch on ONNX Runtime and OpenVINO."""
    want = FAMILIES[name]
    size = SIZE * 2 if name.startswith("seaformer") else SIZE
    indices = ",".join(str(i) for i, _, _ in want)
    for target in ("onnx", "openvino"):
        bundle = edgekit.export(name, target, tmp_path / target, features=indices, input_shape=f"1x3x{size}x{size}",
                                calib_size=3)
        m = bundle.manifest
        assert m["model"]["task"] == "features" and m["model"]["num_classes"] == 0
        assert [(o["name"], o["kind"], o["layout"], o["channels"], o["stride"], o["shape"]) for o in m["outputs"]] == [
            (f"stage{i}", "map", "NCHW", c, s, [1, c, size // s, size // s]) for i, c, s in want]
        parity = bundle.parity
        assert parity["passed"] and parity["agreement_kind"] == "cosine"
        assert list(parity["outputs"]) == [f"stage{i}" for i, _, _ in want]
        assert all(o["cosine_min"] >= 0.99999 for o in parity["outputs"].values())
        assert parity["cosine_min"] == min(o["cosine_min"] for o in parity["outputs"].values())  # the worst decides
