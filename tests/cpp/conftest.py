"""Fixtures for the C++ runtime tests: the build (cached), and bundles exported fresh for the session."""
from __future__ import annotations

import pytest

import edgekit


@pytest.fixture(scope="session")
def cpp():
    from tests.cpp.build import build

    return build()


@pytest.fixture(scope="session")
def zoo_bundle(tmp_path_factory):
    """A zoo classifier exported to OpenVINO fp32 at a small input (bicubic preprocessing)."""
    out = tmp_path_factory.mktemp("cpp") / "efficientvit_b0-openvino"
    edgekit.export("efficientvit_b0", "openvino", out, input_shape="1x3x128x128")
    return out


@pytest.fixture(scope="session")
def seg_bundle(tmp_path_factory):
    """A tiny segmenter exported to OpenVINO fp32 (bilinear preprocessing, 5 classes, 16x16 labels)."""
    out = tmp_path_factory.mktemp("cpp") / "tiny_segmenter-openvino"
    edgekit.export("tests.fixtures.tiny:tiny_segmenter", "openvino", out, input_shape="1x3x64x64")
    return out


@pytest.fixture(scope="session")
def features_bundle(tmp_path_factory):
    """A tiny backbone exported to OpenVINO fp32: three named NCHW maps, stage1 (1, 16, 16, 16) stride 4,
    stage2 (1, 32, 8, 8) stride 8, stage3 (1, 64, 4, 4) stride 16, of a 64x64 input."""
    out = tmp_path_factory.mktemp("cpp") / "tiny_backbone-openvino"
    edgekit.export("tests.fixtures.tiny:tiny_backbone", "openvino", out)
    return out
