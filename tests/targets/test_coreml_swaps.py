"""CoreML's rank <= 5 swaps (edgekit/rewrite/swaps/coreml_*.py) on small timm models: exact, and they convert."""
from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from edgekit.errors import EdgekitFailure
from edgekit.targets.coreml.convert import Deployed, convert
from edgekit.targets.coreml.program import inspect_spec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")


def _timm():
    from edgekit.timm_compat import import_timm

    return import_timm()


def _small_nest():
    _timm()
    from timm.models.nest import Nest

    torch.manual_seed(0)
    return Nest(img_size=32, patch_size=4, num_levels=2, embed_dims=(16, 32), num_heads=(2, 4), depths=(1, 1),
                num_classes=10, drop_path_rate=0.0).eval()


def _small_swin():
    _timm()
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    # 56 -> 14x14 tokens: two 7x7 windows per side, so the second block's shift and mask are exercised
    return SwinTransformer(img_size=56, patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=7,
                           num_classes=10, drop_path_rate=0.0).eval()


def _small_twins():
    _timm()
    from timm.models.twins import Twins

    torch.manual_seed(0)
    # 40 -> 10x10 tokens in stage 1: windows of 4 need padding to 12x12 (and the crop back)
    return Twins(img_size=40, patch_size=4, embed_dims=(16, 32), num_heads=(1, 2), mlp_ratios=(2, 2), depths=(2, 2),
                 wss=(4, 4), sr_ratios=(2, 1), num_classes=10).eval()


def _small_volo():
    _timm()
    from timm.models.volo import VOLO

    torch.manual_seed(0)
    # 64 -> 8x8 tokens: outlook attention folds 3x3 windows back at stride 2 onto an even map (output padding)
    return VOLO(layers=(2, 1, 1, 1), img_size=64, embed_dims=(32, 64, 64, 64), num_heads=(1, 2, 2, 2),
                stem_hidden_dim=16, num_classes=10).eval()


def _small_mvitv2():
    _timm()
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    torch.manual_seed(0)
    # pooled keys (stride 4 then 2) make q and k sizes differ, so the scaled distances are exercised; the
    # position tables start at zero in timm: random ones, or the terms would add nothing to check
    model = MultiScaleVit(MultiScaleVitCfg(depths=(1, 2), embed_dim=16, num_heads=1), img_size=(64, 64),
                          num_classes=10).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name:
                p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("make,swap_name,size,swapped", [
    (_small_nest, "coreml_block_rank", 32, 4),  # 2 levels + 2 attention modules
    (_small_swin, "coreml_window_rank", 56, 4),  # 4 blocks
    (_small_twins, "coreml_twins_rank", 40, 2),  # the locally-grouped block of each stage (the other is global)
    (_small_volo, "coreml_fold", 64, 2),  # the two outlookers of the first stage
    (_small_mvitv2, "coreml_mvitv2_rank", 64, 3),  # every block's attention
])
def test_swap_is_exact_and_converts_within_rank_5(make, swap_name, size, swapped):
    import importlib

    swap = importlib.import_module(f"edgekit.rewrite.swaps.{swap_name}")
    model = make()
    new = copy.deepcopy(model)
    assert swap.apply(new) == swapped and swap.apply(new) == 0  # idempotent
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), rtol=0, atol=1e-5)  # same windows, same order
    converted = convert(Deployed(new, (0.5,) * 3, (0.25,) * 3), (1, 3, size, size), "logits", "fp32", "iOS16")
    report = inspect_spec(converted.mlmodel.get_spec(), "fp32")
    assert report.max_rank <= 5 and not report.over_rank


@pytest.mark.parametrize("make,size,error", [(_small_nest, 32, "rank <= 5"), (_small_twins, 40, "rank <= 5"),
                                             (_small_volo, 64, "stride >= kernel_size for col2im"),
                                             (_small_mvitv2, 64, "rank <= 5")])
def test_without_the_swap_it_does_not_convert(make, size, error):
    with pytest.raises(EdgekitFailure, match=error):
        convert(Deployed(make(), (0.5,) * 3, (0.25,) * 3), (1, 3, size, size), "logits", "fp32", "iOS16")


@pytest.mark.parametrize("kernel,padding,stride,size", [(3, 1, 1, (7, 7)), (3, 1, 2, (8, 8)), (3, 1, 2, (7, 9)),
                                                       (2, 0, 2, (6, 4)), (5, 2, 3, (10, 11))])
def test_fold_as_a_transposed_convolution_is_torch_fold(kernel, padding, stride, size):
    from edgekit.rewrite.swaps.coreml_fold import fold

    h = (size[0] + 2 * padding - kernel) // stride + 1
    w = (size[1] + 2 * padding - kernel) // stride + 1
    x = torch.randn(2, 3 * kernel * kernel, h * w)
    expected = torch.nn.functional.fold(x, size, kernel, padding=padding, stride=stride)
    torch.testing.assert_close(fold(x, size, kernel, padding, stride), expected, rtol=0, atol=1e-6)  # sum order only


def test_transformers_hiera_swap_is_exact_and_converts_within_rank_5():
    """Mask-unit attention with query pooling (stages 2-4) and global attention (the last stage)."""
    transformers = pytest.importorskip("transformers", reason="transformers is an optional dependency")
    from edgekit.rewrite.swaps import coreml_hiera_rank

    torch.manual_seed(0)
    config = transformers.HieraConfig(image_size=[64, 64], embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                      num_labels=5)
    hiera = transformers.HieraForImageClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(pixel_values=x).logits

    model = Logits(hiera).eval()
    with pytest.raises(EdgekitFailure, match="rank <= 5"):  # what the swap is for
        convert(Deployed(model, (0.5,) * 3, (0.25,) * 3), (1, 3, 64, 64), "logits", "fp32", "iOS16")
    new = copy.deepcopy(model)
    assert coreml_hiera_rank.apply(new) == 4 and coreml_hiera_rank.apply(new) == 0  # one block per stage; idempotent
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), rtol=0, atol=1e-5)
    converted = convert(Deployed(new, (0.5,) * 3, (0.25,) * 3), (1, 3, 64, 64), "logits", "fp32", "iOS16")
    report = inspect_spec(converted.mlmodel.get_spec(), "fp32")
    assert report.max_rank <= 5 and not report.over_rank
