"""Sources that are torch modules already: a zoo name, ``package.module:factory``, an exported program."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch
from torch import nn

from edgekit.config import SourceOptions, Task
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess
from edgekit.sources.spec import DEFAULT, IMAGENET_MEAN, IMAGENET_STD, ZOO, ModelSpec, SourceModel, check_shape


def zoo_model(name: str, input_shape: tuple[int, ...] | None, options: SourceOptions,
              state: dict | None) -> SourceModel:
    from edgekit.models import _registry as reg

    if not reg.is_model(name):
        near = reg.near_names(name)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise UsageError(f"unknown model {name!r}; {hint}run `edgekit models` to list the zoo, or use timm:<name>, "
                         f"hf:<repo>, a model directory or package.module:factory")
    cfg = reg.get_cfg(name)
    shape = tuple(input_shape) if input_shape else (1, *cfg.input_size)
    check_shape(shape, cfg.size_divisor, name)
    img_size = None if tuple(shape[2:]) == tuple(cfg.input_size[1:]) else tuple(shape[2:])
    origin = {"size": "flag (--input-shape)" if input_shape else ZOO, "mean": ZOO, "std": ZOO, "resize": ZOO,
              "num_classes": ZOO, "labels": ZOO, "weights": "random initialisation (no --checkpoint)"}
    num_classes = cfg.num_classes
    if options.num_classes is not None:
        num_classes, origin["num_classes"] = options.num_classes, "flag"
    # a shape envelope over a model that bakes sizes at construction builds it for a range instead (edgekit.shapes)
    extra = {"dynamic_size": True} if options.dynamic_size else {}
    model = reg.create_model(name, img_size=img_size, num_classes=num_classes, **extra)
    if state is not None:
        found = classes_from_state(model, state, num_classes)
        if found is not None and found[0] != num_classes:
            if options.num_classes is not None:
                raise UsageError(f"--num-classes {options.num_classes} contradicts the checkpoint: its classifier "
                                 f"{found[1]} has {found[0]} outputs")
            num_classes, origin["num_classes"] = found[0], f"checkpoint ({found[1]})"
            model = reg.create_model(name, img_size=img_size, num_classes=num_classes, **extra)
    labels = cfg.labels if num_classes == cfg.num_classes else ""
    if not labels:
        origin.pop("labels")
    spec = ModelSpec(name=name, source=name, task=Task.parse(cfg.task), input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), mean=cfg.mean, std=cfg.std, resize=cfg.interpolation),
                     num_classes=num_classes, labels=labels, output_stride=cfg.output_stride,
                     size_divisor=cfg.size_divisor, tolerance=dict(cfg.tolerance), origin=origin)
    return SourceModel(model, spec, family=cfg.family)


def classes_from_state(model: nn.Module, state: dict, num_classes: int, key: str | None = None) -> tuple[int, str] | None:
    """(classes, weight key) the checkpoint's classifier has, when it is the only thing that differs in shape
    from ``model`` (a fine-tuned head); None when the checkpoint's shapes say nothing about it.

    key: the classifier's weight key when the model names it (timm's ``pretrained_cfg["classifier"]``)."""
    if key is not None and key in state and state[key].ndim >= 1:
        return int(state[key].shape[0]), key
    own = model.state_dict()
    differ = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not differ:
        return None
    rows = {int(state[k].shape[0]) for k in differ if state[k].ndim >= 1}
    head = all(own[k].ndim >= 1 and own[k].shape[0] == num_classes and state[k].ndim == own[k].ndim
               and tuple(state[k].shape[1:]) == tuple(own[k].shape[1:]) for k in differ)
    if not head or len(rows) != 1:
        return None
    weight = next((k for k in differ if k.endswith("weight")), differ[0])
    return rows.pop(), weight


_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def factory_model(source: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    if not _FACTORY.match(source):
        raise UsageError(f"model source {source!r} is neither a zoo name, timm:<name>, hf:<repo>, a model directory, "
                         f"package.module:factory nor a .pt2 file")
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
    return spec_from_module(model, source, input_shape)


def exported_program(path: Path, input_shape: tuple[int, ...] | None) -> SourceModel:
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
    return spec_from_module(_ExportedProgramModule(ep.module()), str(path), input_shape)


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


def probe_output(model: nn.Module, source: str, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The model's first output on a zero image of ``input_shape``; a model that cannot run it is a usage error."""
    from edgekit.sources.features import output_tensors, probe

    return output_tensors(probe(model, source, input_shape))[1][0]


def spec_from_module(model: nn.Module, source: str, input_shape: tuple[int, ...] | None) -> SourceModel:
    """A user model: its ``edgekit_cfg`` if it has one, else the shape given and a probe forward pass."""
    cfg = getattr(model, "edgekit_cfg", None)
    given = input_shape is not None
    if input_shape is None:
        input_shape = (1, *cfg.input_size) if cfg is not None else None
    if input_shape is None:
        raise UsageError(f"{source}: pass --input-shape (e.g. 1x3x224x224); the model does not declare its input size")
    check_shape(tuple(input_shape), cfg.size_divisor if cfg else 1, source)
    from edgekit.sources.features import output_tensors, probe, transformers_outputs

    raw = probe(model, source, tuple(input_shape))
    hf = transformers_outputs(model, raw)
    if hf is not None:  # a transformers backbone or base model: its maps or hidden states, by name
        model, hf_names = hf
        raw = dict(zip(hf_names, output_tensors(probe(model, source, tuple(input_shape)))[1]))
    names, tensors = output_tensors(raw)
    out = tensors[0]
    features = len(tensors) > 1 or hf is not None or (cfg is not None and cfg.task == Task.FEATURES.value)
    task = Task.FEATURES if features else Task.SEGMENTATION if out.ndim == 4 else Task.CLASSIFICATION
    num_classes = 0 if features else int(out.shape[1])
    stride = int(input_shape[2] // out.shape[2]) if out.ndim == 4 and not features else 1
    mean, std = (cfg.mean, cfg.std) if cfg else (IMAGENET_MEAN, IMAGENET_STD)
    declared = "model (edgekit_cfg)"
    origin = {"size": "flag (--input-shape)" if given else declared, "mean": declared if cfg else DEFAULT,
              "std": declared if cfg else DEFAULT, "resize": declared if cfg else "default (bilinear)",
              "num_classes": "model (output shape)", "weights": "the factory's"}
    if cfg is not None and cfg.labels:
        origin["labels"] = declared
    resize = getattr(cfg, "interpolation", "bilinear") if cfg else "bilinear"
    spec = ModelSpec(name=source.split(":")[-1] if ":" in source else Path(source).stem, source=source, task=task,
                     input_shape=tuple(input_shape),
                     preprocess=Preprocess(size=tuple(input_shape[2:]), mean=mean, std=std, resize=resize),
                     num_classes=num_classes, labels=cfg.labels if cfg else "", output_stride=stride, origin=origin)
    if features:
        from edgekit.sources.features import DictOutputs, features_spec

        wrapped = DictOutputs(model, names) if isinstance(raw, dict) and hf is None else model
        return features_spec(SourceModel(model, spec), wrapped, names, tensors)
    if isinstance(raw, dict):  # one tensor in a dict (a transformers classifier's logits): as a plain output
        from edgekit.sources.features import DictOutputs

        model = DictOutputs(model, names)
    return SourceModel(model, spec)
