"""Tiny, randomly initialised transformers models, saved as the model directories users bring.

Each builder returns ``(model, image processor or None)``; :func:`save_model_dir` writes them with
``save_pretrained`` (config.json + model.safetensors, and preprocessor_config.json where the
architecture has a processor), which is exactly what ``edgekit.export(<directory>, ...)`` reads.
The configs keep each architecture's structure (every stage kind, the attention and head types) with
one layer per stage and 8-64 channels, so an export takes seconds.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

NUM_CLASSES = 5
SEED = 0


def _labels() -> dict:
    id2label = {i: f"class_{i}" for i in range(NUM_CLASSES)}
    return {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def _processor(name: str, size: int, **kwargs):
    import transformers

    return getattr(transformers, name)(size={"height": size, "width": size}, **kwargs)


# --- image classification -------------------------------------------------------------------------

def vit():
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, **_labels())
    return ViTForImageClassification(config), _processor("ViTImageProcessor", 64)


def deit():
    from transformers import DeiTConfig, DeiTForImageClassification

    config = DeiTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, **_labels())
    return DeiTForImageClassification(config), None


def swinv2():
    from transformers import Swinv2Config, Swinv2ForImageClassification

    config = Swinv2Config(image_size=64, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[1, 2], window_size=4,
                          **_labels())
    return Swinv2ForImageClassification(config), None


def levit():
    from transformers import LevitConfig, LevitForImageClassification

    config = LevitConfig(image_size=64, hidden_sizes=[32, 48, 64], num_attention_heads=[1, 2, 2], depths=[1, 1, 1],
                         key_dim=[8, 8, 8], **_labels())
    return LevitForImageClassification(config), None


def pvt_v2():
    from transformers import PvtV2Config, PvtV2ForImageClassification

    config = PvtV2Config(image_size=64, hidden_sizes=[16, 24, 32, 48], depths=[1, 1, 1, 1],
                         num_attention_heads=[1, 1, 2, 2], **_labels())
    return PvtV2ForImageClassification(config), None


def dinov2():
    from transformers import Dinov2Config, Dinov2ForImageClassification

    config = Dinov2Config(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          mlp_ratio=2, **_labels())
    return Dinov2ForImageClassification(config), None


def focalnet():
    from transformers import FocalNetConfig, FocalNetForImageClassification

    config = FocalNetConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], **_labels())
    return FocalNetForImageClassification(config), None


def cvt():
    from transformers import CvtConfig, CvtForImageClassification

    # depth[i] > i: CvT indexes stage i's drop-path schedule (depth[i] long) with i (IndexError otherwise)
    config = CvtConfig(embed_dim=[16, 32, 48], num_heads=[1, 2, 3], depth=[1, 2, 3], **_labels())
    return CvtForImageClassification(config), None


def hiera():
    from transformers import HieraConfig, HieraForImageClassification

    config = HieraConfig(image_size=[64, 64], embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], **_labels())
    return HieraForImageClassification(config), None


def swiftformer():
    from transformers import SwiftFormerConfig, SwiftFormerForImageClassification

    config = SwiftFormerConfig(image_size=64, depths=[1, 1, 1, 1], embed_dims=[16, 24, 32, 48], **_labels())
    return SwiftFormerForImageClassification(config), None


# --- semantic segmentation ------------------------------------------------------------------------

def segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(hidden_sizes=[16, 24, 32, 48], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
                             decoder_hidden_size=32, **_labels())
    return SegformerForSemanticSegmentation(config), _processor("SegformerImageProcessor", 64)


def mobilevitv2_seg():
    from transformers import MobileViTV2Config, MobileViTV2ForSemanticSegmentation

    config = MobileViTV2Config(image_size=64, width_multiplier=0.5, aspp_out_channels=32, **_labels())
    return MobileViTV2ForSemanticSegmentation(config), _processor("MobileViTImageProcessor", 64)


def mobilevit_seg():
    from transformers import MobileViTConfig, MobileViTForSemanticSegmentation

    config = MobileViTConfig(image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                             num_attention_heads=2, aspp_out_channels=32, **_labels())
    return MobileViTForSemanticSegmentation(config), None


def upernet_convnext():
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    backbone = ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, use_auxiliary_head=False, **_labels())
    return UperNetForSemanticSegmentation(config), None


def upernet_swin():
    from transformers import SwinConfig, UperNetConfig, UperNetForSemanticSegmentation

    backbone = SwinConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, use_auxiliary_head=False, **_labels())
    return UperNetForSemanticSegmentation(config), None


def dpt():
    from transformers import DPTConfig, DPTForSemanticSegmentation

    config = DPTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 24, 32],
                       fusion_hidden_size=16, use_auxiliary_head=False, **_labels())
    return DPTForSemanticSegmentation(config), _processor("DPTImageProcessor", 64)


def beit_seg():
    from transformers import BeitConfig, BeitForSemanticSegmentation

    config = BeitConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, use_relative_position_bias=True, out_indices=[0, 1, 2, 3],
                        pool_scales=[1, 2], auxiliary_channels=16, use_auxiliary_head=False, **_labels())
    return BeitForSemanticSegmentation(config), _processor("BeitImageProcessor", 64)


def data2vec_vision_seg():
    from transformers import Data2VecVisionConfig, Data2VecVisionForSemanticSegmentation

    config = Data2VecVisionConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=4,
                                  num_attention_heads=2, intermediate_size=64, use_relative_position_bias=True,
                                  out_indices=[0, 1, 2, 3], pool_scales=[1, 2], auxiliary_channels=16,
                                  use_auxiliary_head=False, **_labels())
    return Data2VecVisionForSemanticSegmentation(config), None


def deeplabv3_mobilenet_v2():
    from transformers import MobileNetV2Config, MobileNetV2ForSemanticSegmentation

    config = MobileNetV2Config(image_size=64, depth_multiplier=0.35, **_labels())
    return MobileNetV2ForSemanticSegmentation(config), _processor("MobileNetV2ImageProcessor", 64)


# --- universal segmentation (exported as per-class semantic scores) -----------------------------------

def _tiny_swin_backbone():
    from transformers import SwinConfig

    return SwinConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                      out_features=["stage1", "stage2", "stage3", "stage4"])


def mask2former():
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    # feature sizes are multiples of 32: the pixel decoder's GroupNorm has 32 groups
    config = Mask2FormerConfig(backbone_config=_tiny_swin_backbone(), feature_size=32, mask_feature_size=32,
                               hidden_dim=32, encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, dim_feedforward=32, num_queries=8, **_labels())
    return Mask2FormerForUniversalSegmentation(config), None


def maskformer():
    from transformers import DetrConfig, MaskFormerConfig, MaskFormerForInstanceSegmentation

    decoder = DetrConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8)
    config = MaskFormerConfig(backbone_config=_tiny_swin_backbone(), decoder_config=decoder, fpn_feature_size=32,
                              mask_feature_size=32, **_labels())
    return MaskFormerForInstanceSegmentation(config), None


def eomt():
    """EoMT as trained: mask annealing ends with the masked attention of its last blocks switched off
    (``attn_mask_probs`` 0), which is how it runs at inference; :func:`eomt_masked_attention` keeps it on."""
    model, processor = eomt_masked_attention()
    model.attn_mask_probs.zero_()
    return model, processor


def eomt_masked_attention():
    """EoMT as initialised: its last blocks' queries attend only where their own mask predictions are positive."""
    from transformers import EomtConfig, EomtForUniversalSegmentation

    config = EomtConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        num_blocks=1, num_queries=8, num_register_tokens=2, num_upscale_blocks=2, **_labels())
    return EomtForUniversalSegmentation(config), None


def save_model_dir(build: Callable, directory: Path, input_shape: tuple[int, ...]) -> Path:
    """Build, re-initialise (seeded, see :func:`tests.compat.weights.reinitialise`) and ``save_pretrained`` into
    ``directory``; returns it."""
    from transformers.utils import logging

    from tests.compat.weights import calibrate_batchnorm, reinitialise

    torch.manual_seed(SEED)
    model, processor = build()
    reinitialise(model, SEED)
    calibrate_batchnorm(model, lambda x: model(pixel_values=x), input_shape, SEED)
    logging.disable_progress_bar()  # save_pretrained draws a bar per shard
    model.eval().save_pretrained(str(directory))
    if processor is not None:
        processor.save_pretrained(str(directory))
    return directory
