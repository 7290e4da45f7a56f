"""Tiny model directories and a hub cache for the source tests: random weights, saved the way users save
theirs (transformers' ``save_pretrained``, timm's ``save_for_hf``), small enough to export in seconds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex name works as a snapshot folder


def vit_classifier_dir(path: Path, num_labels: int = 3, preprocessor: dict | None = None) -> Path:
    """A 2-layer ViT image classifier (patch 8, 32x32 input) with labels, saved by save_pretrained."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8,
                       image_size=32, num_labels=num_labels,
                       id2label={i: f"class {i}" for i in range(num_labels)},
                       label2id={f"class {i}": i for i in range(num_labels)})
    ViTForImageClassification(config).save_pretrained(path)
    write_preprocessor(path, preprocessor if preprocessor is not None else
                       {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 32, "width": 32},
                        "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    return path


def segformer_dir(path: Path, num_labels: int = 5) -> Path:
    """A 4-stage SegFormer (one block per stage, hidden 8-32) for semantic segmentation, saved by save_pretrained."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1],
                             decoder_hidden_size=32, num_labels=num_labels, sr_ratios=[8, 4, 2, 1])
    SegformerForSemanticSegmentation(config).save_pretrained(path)
    write_preprocessor(path, {"image_processor_type": "SegformerImageProcessor", "do_resize": True,
                              "size": {"height": 64, "width": 64}, "resample": 2, "do_normalize": True,
                              "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    return path


def write_preprocessor(path: Path, config: dict) -> None:
    (path / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def timm_dir(path: Path, arch: str = "edgenext_xx_small", num_classes: int = 4, safe: bool = True,
             labels: list[str] | None = None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> Path:
    """A timm model saved by timm's save_for_hf (config.json with architecture, num_classes, pretrained_cfg)."""
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=num_classes)
    extra = {"label_names": labels} if labels else {}
    save_for_hf(model, str(path), model_config={**extra, "pretrained_cfg": {"mean": list(mean), "std": list(std)}},
                safe_serialization=safe)
    return path


def offline_hub_home(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face home under ``tmp_path`` for this test, offline (``HF_HOME`` set, ``HF_HUB_CACHE``
    unset, ``HF_HUB_OFFLINE=1``); its hub cache is ``<home>/hub``."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def put_in_hub_cache(hub: Path, repo_id: str, files: Path, commit: str = COMMIT) -> Path:
    """Place a directory in the Hugging Face hub cache layout (what `hf download` leaves behind):
    ``models--<org>--<name>/snapshots/<commit>/...`` and ``refs/main`` naming the commit."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
