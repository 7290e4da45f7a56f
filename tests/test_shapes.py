"""Shape envelopes (edgekit/shapes.py): parsing and checks, the planner's rule per zoo family and for models it does
not know, the corners the gate runs at, the runtimes' refusals, and the zoo models built for a range of sizes
computing what the model built for each size computes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekit.errors import UsageError
from edgekit.shapes import Envelope, SizeRule, envelope_for, parse, probe_rule, zoo_rule

ANY = SizeRule("efficientvit", True, 32, "convolutions")
SWIN = zoo_rule("swin", 32, 7)


def test_parse_three_shapes_or_one():
    assert parse("1x3x256x256:1x3x512x512:1x3x1024x1024") == ((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 1024, 1024))
    assert parse("1x3x224x224") == ((1, 3, 224, 224),) * 3
    for bad, words in (("1x3x224x224:1x3x256x256", "give MIN:OPT:MAX"), ("1x3x224:1x3x224:1x3x224", "four positive"),
                       ("ax3x2x2:1x3x2x2:1x3x2x2", "is not a shape")):
        with pytest.raises(UsageError, match=words):
            parse(bad)


@pytest.mark.parametrize("text,words", [
    ("1x3x512x512:1x3x256x256:1x3x1024x1024", "height must satisfy MIN <= OPT <= MAX, got 512, 256, 1024"),
    ("1x1x256x256:1x1x512x512:1x1x512x512", "the channel count must be 3"),
    ("1x3x256x256:1x3x500x512:1x3x1024x1024", "500 is not a multiple of 32, m's size step (its total stride); use 512"),
])
def test_bad_envelopes_are_refused_in_one_line(text, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        envelope_for(text, False, False, (1, 3, 512, 512), ANY, "m")


def test_a_fixed_model_names_what_fixes_its_size():
    rule = zoo_rule("efficientformerv2", 32)
    assert not rule.varies and "attention-bias tables" in rule.fixed_by
    for text, hw in (("1x3x224x224:1x3x224x224:1x3x256x256", False), (None, True)):
        with pytest.raises(UsageError, match="cannot take more than one input size: the size is fixed by the "
                                             "attention-bias tables"):
            envelope_for(text, hw, False, (1, 3, 224, 224), rule, "efficientformerv2_s1")
    # one size is still fine: MIN = OPT = MAX
    assert not envelope_for("1x3x224x224", False, False, (1, 3, 224, 224), rule, "m").dynamic_hw


def test_dynamic_hw_chooses_half_to_twice_in_steps_and_keeps_swin_a_window_wide():
    e = envelope_for(None, True, False, (1, 3, 512, 512), ANY, "m")
    assert (e.min, e.opt, e.max, e.step) == ((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 1024, 1024), 32)
    e = envelope_for(None, True, False, (1, 3, 224, 224), SWIN, "swin_tiny")
    assert (e.min, e.max) == ((1, 3, 224, 224), (1, 3, 448, 448))  # 32 x window 7: the last grid is 7 wide
    with pytest.raises(UsageError, match="below 224, the smallest side swin_tiny takes in one bundle"):
        envelope_for("1x3x192x192:1x3x224x224:1x3x448x448", False, False, (1, 3, 224, 224), SWIN, "swin_tiny")
    with pytest.raises(UsageError, match="--dynamic-hw with --dynamic-batch"):
        envelope_for(None, True, True, (1, 3, 224, 224), ANY, "m")
    with pytest.raises(UsageError, match="fixes the batch at 1"):
        envelope_for("1x3x224x224:1x3x224x224:1x3x256x256", False, True, (1, 3, 224, 224), ANY, "m")


def test_corners_include_a_padded_size_for_windowed_models():
    swin = Envelope((1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 448, 448), 32, 224)
    labels = dict(swin.corners())
    assert labels["min/opt"] == (1, 3, 224, 224) and labels["max"] == (1, 3, 448, 448)
    padded = labels["padded"]
    assert padded[2] % 224 or padded[3] % 224  # some stage grid is not a multiple of the window there
    plain = Envelope((1, 3, 128, 128), (1, 3, 192, 192), (1, 3, 256, 256), 32)
    assert [label for label, _ in plain.corners()] == ["min", "opt", "max", "between"]
    assert dict(plain.corners())["between"] not in ((1, 3, 128, 128), (1, 3, 192, 192), (1, 3, 256, 256))


def test_refusals_say_what_is_wrong():
    e = Envelope((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 1024, 1024), 32)
    assert e.refusal((1, 3, 512, 640)) is None
    assert "input height 2048 is outside the bundle's envelope 256..1024" in e.refusal((1, 3, 2048, 512))
    assert "input batch 2 is outside" in e.refusal((2, 3, 512, 512))
    assert e.refusal((1, 3, 500, 512)).endswith("the nearest inside is 512x512")
    assert Envelope.from_dict(e.to_dict()) == e


def test_every_zoo_family_has_a_rule():
    from edgekit.models import _registry as reg

    for name in reg.list_models():
        cfg = reg.get_cfg(name)
        rule = zoo_rule(cfg.family, cfg.size_divisor, cfg.window)
        assert rule is not None and rule.why, name
        assert rule.varies == (cfg.family != "efficientformerv2"), name


class _Fixed(nn.Module):
    """A model whose block checks the size it was built for, as a position table would fix it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(nn.Identity(), _SizeCheck(16))

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3))


class _SizeCheck(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        if x.shape[-1] != self.size:
            raise ValueError(f"position table built for {self.size}")
        return x


def test_probe_names_the_module_that_fixes_the_size():
    from edgekit.sources.torch_sources import spec_from_module

    model = _Fixed().eval()
    rule = probe_rule(model, spec_from_module(model, "m", (1, 3, 16, 16)).spec)
    assert not rule.varies and rule.fixed_by == "blocks.1" and "position table built for 16" in rule.why
    free = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    assert probe_rule(free, spec_from_module(free, "m", (1, 3, 16, 16)).spec).varies


@pytest.mark.parametrize("name,sizes", [("swin_tiny", ((224, 224), (224, 256), (288, 256))),
                                        ("swin_tiny_seg", ((256, 288),)),
                                        ("seaformer_small_seg", ((256, 256), (288, 352))),
                                        ("nextvit_small", ((224, 224), (256, 288)))])
def test_zoo_models_built_for_a_range_match_the_model_built_for_each_size(name, sizes):
    """dynamic_size=True computes pads, masks, shifts, sequence lengths and position embeddings from the input; the
    model built for that one size (same weights, re-initialised so every branch matters) is the reference."""
    from edgekit.models import _registry as reg
    from tests.compat.weights import reinitialise

    dynamic = reinitialise(reg.create_model(name, dynamic_size=True), 0).eval()
    state = dynamic.state_dict()
    for size in sizes:
        fixed = reg.create_model(name, img_size=size).eval()
        fixed.load_state_dict(state)
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0] + size[1]))
        with torch.no_grad():
            ref, got = fixed(x), dynamic(x)
        # SeaFormer interpolates its position embeddings with F.interpolate instead of a float64-built matrix
        assert torch.allclose(got, ref, rtol=0, atol=1e-6 * float(ref.abs().max())), (name, size)


def test_the_docs_table_is_the_planners():
    """docs/shapes.md's planner table: each family's varies and step as zoo_rule says."""
    from pathlib import Path

    from edgekit.models import _registry as reg

    text = (Path(__file__).resolve().parents[1] / "docs" / "shapes.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].strip("*") in ("yes", "no"):
            rows[cells[0]] = (cells[1].strip("*") == "yes", cells[2])
    families = {reg.get_cfg(n).family: reg.get_cfg(n) for n in reg.list_models()}
    assert set(rows) == set(families)
    for family, cfg in families.items():
        rule = zoo_rule(family, cfg.size_divisor, cfg.window)
        assert rows[family][0] == rule.varies, family
        assert rows[family][1] == (str(rule.step) if rule.varies else ""), family
