"""Slimmed copies of timm architectures, one per family: the corpus's CI representatives.

The published small variants cost 15-35 s per export on 2 cores (deep graphs: twins_svt_small 2-2-10-4 blocks,
caformer_s18 3-3-9-3), so CI exports each family through a copy with one or two blocks per stage and
8-128 channels: the same block types and code paths, a few seconds per export. The full run exports
the published variants too.

Most are the published variant with smaller keyword arguments and 10 classes, saved as timm's
``save_for_hf`` writes a model directory (config.json with ``architecture`` and ``model_args``,
model.safetensors) and exported from it: the path of a timm model a user fine-tuned and saved. Where a
directory cannot record the architecture (the published variant's factory fixes the arguments being
changed: MetaFormer, NesT, GC ViT, VOLO; its configuration is an object: MobileNetV4's block strings,
MViTv2's and ViTamin's dataclasses; CoaT's weights are shared between modules, which safetensors refuses),
the corpus gives a factory (``tests.compat.timm_tiny:<name>``), edgekit's "your code" source.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# family -> (published architecture, smaller keyword arguments)
DIRECTORY_ARGS: dict[str, tuple[str, dict]] = {
    "efficientformer": ("efficientformer_l1", {"depths": [1, 1, 1, 2], "embed_dims": [16, 32, 48, 64]}),
    "edgenext": ("edgenext_xx_small", {"depths": [1, 1, 2, 1], "dims": [16, 32, 48, 64], "heads": [2, 2, 2, 2]}),
    "tiny_vit": ("tiny_vit_5m_224", {"embed_dims": [16, 32, 48, 64], "depths": [1, 1, 1, 1],
                                     "num_heads": [1, 2, 2, 4]}),
    "efficientvit_msra": ("efficientvit_m0", {"embed_dim": [16, 32, 48], "depth": [1, 1, 1], "num_heads": [2, 2, 2],
                                              "key_dim": [8, 8, 8]}),
    "crossvit": ("crossvit_tiny_240", {"embed_dim": [16, 32], "depth": [[1, 1, 0]], "num_heads": [1, 2]}),
    "convit": ("convit_tiny", {"embed_dim": 32, "depth": 2, "num_heads": 2, "local_up_to_layer": 1}),
    "davit": ("davit_tiny", {"depths": [1, 1, 1, 1], "embed_dims": [16, 32, 48, 64], "num_heads": [1, 2, 2, 4]}),
    "twins": ("twins_svt_small", {"embed_dims": [16, 32, 48, 64], "depths": [1, 1, 1, 1],
                                  "num_heads": [1, 2, 2, 4]}),
    "xcit": ("xcit_nano_12_p16_224", {"embed_dim": 32, "depth": 2, "num_heads": 2}),
    "vit_hybrid": ("vit_tiny_r_s16_p8_224", {"embed_dim": 32, "depth": 2, "num_heads": 2}),
    "shvit": ("shvit_s1", {"embed_dim": [32, 48, 64], "depth": [1, 1, 1], "partial_dim": [8, 12, 16]}),
    "cait": ("cait_xxs24_224", {"embed_dim": 32, "depth": 2, "num_heads": 2}),
    "pit": ("pit_ti_224", {"base_dims": [16, 16, 16], "depth": [1, 1, 1], "heads": [1, 2, 2]}),
    "maxvit": ("test_maxvit", {}),  # timm's own tiny MaxViT (its stages are config objects)
    "mambaout": ("test_mambaout", {}),  # timm's own tiny MambaOut
}
for _arch, _args in DIRECTORY_ARGS.values():
    _args.setdefault("num_classes", 10)  # a 1000-class (TinyViT: 21841) head would outweigh the slimmed body


def save_timm_dir(family: str, directory: Path, input_shape: tuple[int, ...], seed: int = 0) -> Path:
    """The family's slimmed model, re-initialised (:mod:`tests.compat.weights`), saved with timm's
    ``save_for_hf`` (safetensors) into ``directory``."""
    from edgekit.timm_compat import import_timm
    from tests.compat.weights import calibrate_batchnorm, reinitialise

    timm = import_timm()
    from timm.models import save_for_hf

    arch, args = DIRECTORY_ARGS[family]
    torch.manual_seed(seed)
    try:
        model = timm.create_model(arch, img_size=tuple(input_shape[2:]), **args)
    except TypeError:  # a model that takes any size has no img_size argument (edgekit does the same)
        model = timm.create_model(arch, **args)
    reinitialise(model, seed)
    calibrate_batchnorm(model, model, input_shape, seed)
    save_for_hf(model.eval(), str(directory), model_args=args, safe_serialization=True)
    return directory


def _built(model: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    from tests.compat.weights import calibrate_batchnorm, reinitialise

    reinitialise(model, seed)
    calibrate_batchnorm(model, model, input_shape, seed)
    return model.eval()


def _timm_private(module: str):
    from importlib import import_module

    from edgekit.timm_compat import import_timm

    import_timm()
    return import_module(f"timm.models.{module}")


def caformer() -> nn.Module:
    """CAFormer: separable-convolution stages, then attention stages, one block each."""
    m = _timm_private("metaformer")
    torch.manual_seed(0)
    model = m._create_metaformer("caformer_s18", depths=[1, 1, 1, 1], dims=[16, 32, 64, 96],  # attention: 32 per head
                                 token_mixers=[m.SepConv, m.SepConv, m.Attention, m.Attention],
                                 norm_layers=[m.LayerNorm2dNoBias] * 2 + [m.LayerNormNoBias] * 2, num_classes=10)
    return _built(model, (1, 3, 64, 64))


def coat_lite() -> nn.Module:
    """CoaT-Lite: conv-attentional (factorized attention + convolutional relative position) serial blocks."""
    m = _timm_private("coat")
    torch.manual_seed(0)
    model = m._create_coat("coat_lite_mini", patch_size=4, embed_dims=[16, 32, 48, 64], serial_depths=[1, 1, 1, 1],
                           mlp_ratios=[2, 2, 2, 2], img_size=64, num_classes=10)  # 8 heads: its position convs split by head
    return _built(model, (1, 3, 64, 64))


def nest() -> nn.Module:
    """NesT: block-local attention per level, conv + pool aggregation between levels."""
    m = _timm_private("nest")
    torch.manual_seed(0)
    model = m._create_nest("nest_tiny", embed_dims=(16, 32, 64), num_heads=(1, 2, 4), depths=(1, 1, 1),
                           img_size=64, num_classes=10)
    return _built(model, (1, 3, 64, 64))


def gcvit() -> nn.Module:
    """GC ViT: local window and global-query attention alternating, fused-MBConv downsampling."""
    m = _timm_private("gcvit")
    torch.manual_seed(0)
    model = m._create_gcvit("gcvit_xxtiny", depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 4), embed_dim=16,
                            img_size=64, num_classes=10)
    return _built(model, (1, 3, 64, 64))


def volo() -> nn.Module:
    """VOLO: outlook attention stage, then transformer stages and class attention."""
    m = _timm_private("volo")
    torch.manual_seed(0)
    model = m._create_volo("volo_d1_224", layers=(1, 1, 1, 1), embed_dims=(32, 64, 64, 64), num_heads=(1, 2, 2, 2),
                           stem_hidden_dim=16, img_size=64, num_classes=10)
    return _built(model, (1, 3, 64, 64))


def mobilenetv4_hybrid() -> nn.Module:
    """MobileNetV4-hybrid-medium's block kinds, one of each per stage: edge residual, universal inverted
    residuals (extra depthwise, inverted bottleneck, ConvNeXt-like) and mobile multi-query attention."""
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.mobilenetv3 import MobileNetV3

    arch_def = [
        ["er_r1_k3_s2_e4_c16"],
        ["uir_r1_a3_k5_s2_e4_c24", "uir_r1_a0_k0_s1_e2_c24"],
        ["uir_r1_a3_k5_s2_e4_c32", "mqa_r1_k3_h2_v2_s1_d16_c32", "uir_r1_a3_k0_s1_e4_c32"],
        ["uir_r1_a5_k5_s2_e4_c48", "mqa_r1_k3_h2_s1_d16_c48", "uir_r1_a0_k0_s1_e2_c48"],
        ["cn_r1_k1_s1_c96"],
    ]
    torch.manual_seed(0)
    model = MobileNetV3(block_args=decode_arch_def(arch_def), num_classes=10, stem_size=16, num_features=128,
                        act_layer=nn.ReLU)
    return _built(model, (1, 3, 64, 64))


def mvitv2() -> nn.Module:
    """MViTv2 (pooling attention, decomposed relative positions, residual pooling) with one block per stage."""
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    torch.manual_seed(0)
    model = MultiScaleVit(MultiScaleVitCfg(depths=(1, 1, 1, 1), embed_dim=16, num_heads=1), img_size=(64, 64),
                          num_classes=10)
    return _built(model, (1, 3, 64, 64))


def vitamin() -> nn.Module:
    """ViTamin: MBConv stages (LayerNorm2d) feeding a GeGLU ViT stage, small."""
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.vitamin import GeGluMlp, VitCfg, VitConvCfg, _create_vitamin

    torch.manual_seed(0)
    embed_cfg = VitCfg(embed_dim=(16, 32, 64), depths=(1, 1, 1), stem_width=16,
                       conv_cfg=VitConvCfg(norm_layer="layernorm2d", norm_eps=1e-6), head_type="1d")
    model = _create_vitamin("vitamin_small_224", embed_dim=64, depth=2, num_heads=2, mlp_layer=GeGluMlp,
                            mlp_ratio=2.0, class_token=False, global_pool="avg", embed_cfg=embed_cfg,
                            img_size=(64, 64), num_classes=10)
    return _built(model, (1, 3, 64, 64))
