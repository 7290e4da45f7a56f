"""Model sources: a zoo name, ``timm:<name>``, ``package.module:factory``, or an exported program.

Each resolves to a :class:`SourceModel`: the torch module plus a :class:`ModelSpec` saying what
its input is, how images are preprocessed, what the output means and how closely it must match.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from edgekit.config import Task
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    task: Task
    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    preprocess: Preprocess
    num_classes: int
    labels: str = ""
    output_stride: int = 1
    size_divisor: int = 1
    tolerance: dict = field(default_factory=dict)  # {"fp16_cosine": (0.998, "reason")}

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "task": self.task.value,
                "input_shape": list(self.input_shape), "num_classes": self.num_classes, "labels": self.labels,
                "output_stride": self.output_stride, "size_divisor": self.size_divisor}


@dataclass
class SourceModel:
    model: nn.Module
    spec: ModelSpec
    family: str = ""  # zoo family, for module swaps and checkpoint conversion


def load_source(source: str, checkpoint: Path | None = None, input_shape: tuple[int, ...] | None = None) -> SourceModel:
    """Resolve ``source`` to a model in eval mode, loading ``checkpoint`` into it when given."""
    if source.startswith("timm:"):
        loaded = _timm(source[len("timm:"):], input_shape)
    elif source.endswith((".pt2", ".ep")) or (Path(source).suffix in (".pt2", ".ep")):
        loaded = _exported_program(Path(source), input_shape)
    elif ":" in source:
        loaded = _factory(source, input_shape)
    else:
        loaded = _zoo(source, input_shape)
    if checkpoint is not None:
        from edgekit.checkpoint import load_into, read_state_dict

        convert = None
        if loaded.family:
            from edgekit.models._registry import checkpoint_filter

            convert = checkpoint_filter(loaded.spec.name)
        load_into(loaded.model, read_state_dict(Path(checkpoint)), Path(checkpoint), convert)
    loaded.model.eval()
    return loaded


def _check_shape(shape: tuple[int, ...], divisor: int, name: str) -> None:
    if shape[1] != 3:
        raise UsageError(f"input shape {'x'.join(map(str, shape))}: {name} takes 3-channel RGB images")
    if divisor > 1 and (shape[2] % divisor or shape[3] % divisor):
        raise UsageError(f"input shape {'x'.join(map(str, shape))}: height and width must be multiples of {divisor} "
                         f"for {name}; e.g. {shape[0]}x3x{max(divisor, shape[2] // divisor * divisor)}x{max(divisor, shape[3] // divisor * divisor)}")


def _zoo(name: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    from edgekit.models import _registry as reg

    if not reg.is_model(name):
        near = reg.near_names(name)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UsageError(f"unknown model {name!r}; {hint}run `edgekit models` to list the zoo, or use timm:<name> "
                         f"or package.module:factory")
    cfg = reg.get_cfg(name)
    shape = tuple(input_shape) if input_shape else (1, *cfg.input_size)
    _check_shape(shape, cfg.size_divisor, name)
    img_size = None if tuple(shape[2:]) == tuple(cfg.input_size[1:]) else tuple(shape[2:])
    model = reg.create_model(name, img_size=img_size)
    spec = ModelSpec(name=name, source=name, task=Task.parse(cfg.task), input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), mean=cfg.mean, std=cfg.std, resize=cfg.interpolation),
                     num_classes=cfg.num_classes, labels=cfg.labels, output_stride=cfg.output_stride,
                     size_divisor=cfg.size_divisor, tolerance=dict(cfg.tolerance))
    return SourceModel(model, spec, family=cfg.family)


def _timm(name: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    from edgekit.timm_compat import import_timm

    timm = import_timm()
    if not timm.is_model(name):
        near = [m for m in timm.list_models(f"*{name.split('_')[0]}*")][:5]
        hint = f" (timm has: {', '.join(near)})" if near else ""
        raise UsageError(f"timm has no model {name!r}{hint}")
    kwargs = {}
    if input_shape is not None:
        # windowed / position-embedding models must be built for the resolution
        kwargs["img_size"] = tuple(input_shape[2:])
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except TypeError:
        model = timm.create_model(name, pretrained=False)
    pcfg = getattr(model, "pretrained_cfg", {}) or {}
    shape = tuple(input_shape) if input_shape else (1, *pcfg.get("input_size", (3, 224, 224)))
    _check_shape(shape, 1, f"timm:{name}")
    interp = pcfg.get("interpolation", "bilinear")
    spec = ModelSpec(name=name, source=f"timm:{name}", task=Task.CLASSIFICATION, input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), mean=tuple(pcfg.get("mean", IMAGENET_MEAN)),
                                           std=tuple(pcfg.get("std", IMAGENET_STD)),
                                           resize=interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear"),
                     num_classes=int(getattr(model, "num_classes", pcfg.get("num_classes", 1000))),
                     labels="imagenet" if getattr(model, "num_classes", 1000) == 1000 else "")
    return SourceModel(model, spec)


_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _factory(source: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    if not _FACTORY.match(source):
        raise UsageError(f"model source {source!r} is neither a zoo name, timm:<name>, package.module:factory nor a .pt2 file")
    module_name, attr = source.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import {module_name!r} for {source}: {e}; is it on PYTHONPATH?") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise UsageError(f"{module_name} has no attribute {attr!r}")
    model = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    if not isinstance(model, nn.Module):
        raise UsageError(f"{source} returned {type(model).__name__}, not a torch.nn.Module")
    return _spec_from_module(model, source, input_shape)


def _exported_program(path: Path, input_shape: tuple[int, ...] | None) -> SourceModel:
    if not path.is_file():
        raise UsageError(f"exported program {path} does not exist")
    try:
        ep = torch.export.load(str(path))
    except Exception as e:  # torch.export.load raises several kinds on bad files
        raise UsageError(f"cannot load exported program {path}: {str(e).splitlines()[0] if str(e) else e.__class__.__name__}") from None
    if input_shape is None:
        flat = [n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder" and n.name in
                {s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"}]
        if flat and flat[0] is not None:
            input_shape = tuple(int(d) for d in flat[0].shape)
    return _spec_from_module(_ExportedProgramModule(ep.module()), str(path), input_shape)


class _ExportedProgramModule(nn.Module):
    """Wraps ``ExportedProgram.module()``, whose ``eval()``/``train()`` raise: an exported program is
    already in the mode it was exported in. Held outside the module tree so mode changes skip it."""

    def __init__(self, graph_module: nn.Module):
        super().__init__()
        object.__setattr__(self, "_program", graph_module)
        for p in graph_module.parameters():  # inference only; tracing refuses grad-requiring constants
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        return self._program(x)


def _spec_from_module(model: nn.Module, source: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    """A user model: its ``edgekit_cfg`` if it has one, else the shape given and a probe forward pass."""
    cfg = getattr(model, "edgekit_cfg", None)
    if input_shape is None:
        input_shape = (1, *cfg.input_size) if cfg is not None else None
    if input_shape is None:
        raise UsageError(f"{source}: pass --input-shape (e.g. 1x3x224x224); the model does not declare its input size")
    _check_shape(tuple(input_shape), cfg.size_divisor if cfg else 1, source)
    model.eval()
    with torch.no_grad():
        try:
            out = model(torch.zeros(*input_shape))
        except Exception as e:  # the user's forward may raise anything
            raise UsageError(f"{source} fails on an input of shape {'x'.join(map(str, input_shape))}: "
                             f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    task = Task.SEGMENTATION if out.ndim == 4 else Task.CLASSIFICATION
    num_classes = int(out.shape[1])
    stride = int(input_shape[2] // out.shape[2]) if out.ndim == 4 else 1
    mean, std = (cfg.mean, cfg.std) if cfg else (IMAGENET_MEAN, IMAGENET_STD)
    spec = ModelSpec(name=source.split(":")[-1] if ":" in source else Path(source).stem, source=source, task=task,
                     input_shape=tuple(input_shape), preprocess=Preprocess(size=tuple(input_shape[2:]), mean=mean, std=std),
                     num_classes=num_classes, labels=cfg.labels if cfg else "", output_stride=stride)
    return SourceModel(model, spec)
