"""--shapes parsing and validation against what the exported model allows (no TensorRT needed)."""
from __future__ import annotations

import pytest

from edgekit.errors import UsageError
from edgekit.targets.tensorrt.options import HardwareCompatibility, TrtOptions, parse_size
from edgekit.targets.tensorrt.profiles import ShapeProfile, default_profiles, parse_shapes, validate_profiles

DYNAMIC_BATCH = {"input": ["batch", 3, 224, 224]}
DYNAMIC_ALL = {"input": ["batch", 3, "height", "width"]}


def test_parse_min_opt_max_for_the_only_input():
    (p,) = parse_shapes("1x3x224x224:4x3x224x224:8x3x224x224", ["input"])
    assert p == ShapeProfile("input", (1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224))
    assert not p.is_fixed


def test_parse_one_shape_is_fixed_and_named_form():
    (p,) = parse_shapes("input=2x3x64x64", ["input"])
    assert p.min == p.opt == p.max == (2, 3, 64, 64) and p.is_fixed


@pytest.mark.parametrize("text,message", [
    ("1x3x224:1x3x224:1x3x224", "has 3 dimensions"),  # rank is checked against the input
    ("1x3xAx224:1x3x224x224:1x3x224x224", "not a shape"),
    ("0x3x224x224", "positive"),
    ("1x3x224x224:2x3x224x224", "min:opt:max"),
    ("other=1x3x224x224", "model's inputs"),
    ("", "empty"),
])
def test_parse_errors_say_what_is_wrong(text, message):
    with pytest.raises(UsageError, match=message):
        validate_profiles(parse_shapes(text, ["input"]), DYNAMIC_BATCH)


def test_min_opt_max_order():
    with pytest.raises(UsageError, match="min <= opt <= max"):
        validate_profiles(parse_shapes("4x3x224x224:2x3x224x224:8x3x224x224", ["input"]), DYNAMIC_BATCH)


def test_fixed_dimension_names_the_fix():
    # the exported batch is 1 (no --dynamic-batch): a batch range cannot be built
    with pytest.raises(UsageError, match="batch is fixed at 1.*--dynamic-batch"):
        validate_profiles(parse_shapes("1x3x224x224:2x3x224x224:4x3x224x224", ["input"]),
                          {"input": [1, 3, 224, 224]})
    # windowed models are exported for one resolution: height cannot vary
    with pytest.raises(UsageError, match="height is fixed at 224.*--input-shape"):
        validate_profiles(parse_shapes("1x3x224x224:1x3x256x256:1x3x512x512", ["input"]), DYNAMIC_BATCH)


def test_dynamic_spatial_dims_must_be_multiples_of_the_size_divisor():
    ok = parse_shapes("1x3x224x224:1x3x448x448:1x3x672x672", ["input"])
    validate_profiles(ok, DYNAMIC_ALL, size_divisor=224)  # Swin-T: patch 4 x window 7 x stride 8
    bad = parse_shapes("1x3x224x224:1x3x300x448:1x3x672x672", ["input"])
    with pytest.raises(UsageError, match="height 300 is not a multiple of 224"):
        validate_profiles(bad, DYNAMIC_ALL, size_divisor=224)


def test_dynamic_input_without_a_profile_is_an_error_and_default_is_the_export_shape():
    with pytest.raises(UsageError, match="dynamic dimensions"):
        validate_profiles((), DYNAMIC_BATCH)
    (p,) = default_profiles(DYNAMIC_BATCH, (2, 3, 224, 224))
    assert p.min == p.opt == p.max == (2, 3, 224, 224)


def test_options_parse_at_the_edge():
    o = TrtOptions.parse({"workspace": "2G", "dla_core": "1", "hardware_compatibility": "ampere+",
                          "version_compatible": True, "timing_cache": "/tmp/x.cache", "device": "CPU"})
    assert o.workspace == 2 * 2**30 and o.dla_core == 1 and o.version_compatible
    assert o.hardware_compatibility is HardwareCompatibility.AMPERE_PLUS
    assert parse_size("512M") == 512 * 2**20 and parse_size("1024") == 2**30  # bare numbers are MiB, as in trtexec
    for bad, message in ({"workspace": "lots"}, "--workspace"), ({"dla_core": -1}, "--dla-core"), \
                        ({"hardware_compatibility": "turing+"}, "hardware compatibility"):
        with pytest.raises(UsageError, match=message):
            TrtOptions.parse(bad)
