"""The zoo registry: every model registers one small factory per variant with its default config.

A factory is a plain function ``name(**kwargs) -> nn.Module`` decorated with
``@register_model(ModelCfg(...))``. ``create_model`` builds the model and attaches the config as
``model.edgekit_cfg`` so the rest of edgekit (export, parity gate, bundle) knows its input size,
preprocessing, task and tolerances without guessing.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCfg:
    """What edgekit needs to know about a model to deploy it.

    input_size: (C, H, W) at which the model is exported by default.
    task: "classification" (output (B, num_classes)) or "segmentation"
        (output (B, num_classes, H / output_stride, W / output_stride) logits).
    size_divisor: H and W must be multiples of it (patch size x window size, total stride...).
    window: the attention window in tokens, for windowed-attention families (what edgekit's shape planner reads).
    reference: where checkpoints in a compatible key layout come from,
        e.g. {"timm": "efficientvit_b0"} or {"transformers": "SegformerForSemanticSegmentation"}.
    tolerance: per-model overrides of the default parity tolerances, each with a reason,
        e.g. {"int8_agreement": (0.95, "why this is right")}.
    """

    family: str
    task: str = "classification"
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    labels: str = "imagenet"  # name of a label set, or "" for none
    output_stride: int = 1  # segmentation: logits are this many times smaller than the input
    size_divisor: int = 32
    window: int = 0  # windowed attention (Swin): the window, in tokens; 0 without
    reference: dict[str, str] = field(default_factory=dict)
    tolerance: dict[str, tuple[float, str]] = field(default_factory=dict)
    description: str = ""

    def with_input_size(self, size: tuple[int, int, int]) -> ModelCfg:
        return replace(self, input_size=tuple(size))


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[..., nn.Module]
    cfg: ModelCfg


_MODELS: dict[str, _Entry] = {}


def register_model(cfg: ModelCfg) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = _Entry(name, factory, cfg)
        return factory

    return decorate


def list_models(task: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, e in _MODELS.items() if task is None or e.cfg.task == task)


def get_cfg(name: str) -> ModelCfg:
    return _entry(name).cfg


def is_model(name: str) -> bool:
    _load_all()
    return name in _MODELS


def near_names(name: str, n: int = 3) -> list[str]:
    _load_all()
    return difflib.get_close_matches(name, list(_MODELS), n=n, cutoff=0.5)


def create_model(name: str, img_size: tuple[int, int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model (random init) and attach its config as ``model.edgekit_cfg``.

    img_size: (H, W) to build the model for, when not the default (bias tables, masks and
    position embeddings are built for this resolution).
    """
    entry = _entry(name)
    cfg = entry.cfg
    if img_size is not None:
        kwargs["img_size"] = tuple(img_size)
        cfg = cfg.with_input_size((cfg.input_size[0], *img_size))
    model = entry.factory(**kwargs)
    if "num_classes" in kwargs:
        cfg = replace(cfg, num_classes=kwargs["num_classes"])
    model.edgekit_cfg = cfg
    return model


def checkpoint_filter(name: str) -> Callable[[dict, nn.Module], dict] | None:
    """The family's ``checkpoint_filter_fn(state_dict, model) -> state_dict``, converting the key
    layout of the reference implementation (timm, transformers, the original repo) to the zoo's."""
    import sys

    return getattr(sys.modules[_entry(name).factory.__module__], "checkpoint_filter_fn", None)


def _entry(name: str) -> _Entry:
    _load_all()
    if name not in _MODELS:
        raise KeyError(name)
    return _MODELS[name]


def _load_all() -> None:
    """Import every family module beside this one (each registers its variants as it is imported); the package
    itself is not imported here, as it imports this module."""
    import importlib
    import os
    import pkgutil

    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__package__}.{info.name}")
