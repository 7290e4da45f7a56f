"""timm models: ``timm:<name>[.<tag>]`` and timm model directories (``config.json`` with ``architecture``).

A timm architecture is built for the weights it will hold: ``--checkpoint`` decides the number of classes
(the rows of the classifier that ``pretrained_cfg["classifier"]`` names) and, for models with an absolute
position embedding, the image size it was trained at. ``--pretrained`` fetches the published weights of
``<name>.<tag>`` through the Hugging Face cache (:mod:`edgekit.sources.hub`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from torch import nn

from edgekit.config import RESIZE_METHODS, SourceOptions, Task
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess
from edgekit.sources.spec import FLAG, IMAGENET_MEAN, IMAGENET_STD, ModelSpec, SourceModel, check_shape
from edgekit.sources.torch_sources import classes_from_state


def _timm():
    from edgekit.timm_compat import import_timm

    return import_timm()


def split_name(name: str) -> tuple[str, str]:
    """'efficientvit_b0.r224_in1k' -> ('efficientvit_b0', 'r224_in1k')."""
    arch, _, tag = name.partition(".")
    return arch, tag


def _check_arch(timm, arch: str) -> None:
    if not timm.is_model(arch):
        near = [m for m in timm.list_models(f"*{arch.split('_')[0]}*")][:5]
        hint = f" (timm has: {', '.join(near)})" if near else ""
        raise UsageError(f"timm has no model {arch!r}{hint}")


def timm_model(name: str, input_shape: tuple[int, ...] | None, options: SourceOptions, state: dict | None,
               checkpoint: Path | None) -> SourceModel:
    """``timm:<name>``: random weights, a checkpoint shaped to fit, or ``--pretrained`` from the hub."""
    timm = _timm()
    arch, tag = split_name(name)
    _check_arch(timm, arch)
    if options.pretrained:
        if state is not None:
            raise UsageError("give --pretrained or --checkpoint, not both: the checkpoint's weights would replace "
                             "the published ones")
        from edgekit.sources.hub import timm_snapshot

        directory, origin = timm_snapshot(timm, arch, tag)
        return timm_directory(directory, input_shape, options, source=f"timm:{name}", weights_origin=origin,
                              arch=arch)
    if tag:
        raise UsageError(f"timm:{name} names published weights ({tag}); add --pretrained to load them from the "
                         f"Hugging Face cache, or give timm:{arch} with --checkpoint PATH")
    origin = {"weights": f"checkpoint {checkpoint}" if checkpoint else "random initialisation (no --checkpoint or "
                                                                        "--pretrained)"}
    kwargs: dict = {}
    if options.num_classes is not None:
        kwargs["num_classes"], origin["num_classes"] = options.num_classes, FLAG
    if input_shape is not None:
        kwargs["img_size"] = tuple(input_shape[2:])  # windowed / position-embedding models are built for it
    model = _create(timm, arch, kwargs)
    if state is not None:
        model, kwargs = _fit_to_checkpoint(timm, arch, model, kwargs, state, options, origin, input_shape is None)
        if input_shape is None and "img_size" in kwargs:  # the size the checkpoint's position embedding says
            input_shape = (1, 3, *kwargs["img_size"])
    pcfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    return _spec(model, arch, f"timm:{name}", pcfg, input_shape, origin, "timm pretrained_cfg", labels=None)


def _create(timm, arch: str, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=False, **kwargs)
    except TypeError:
        if "img_size" not in kwargs:
            raise
        rest = {k: v for k, v in kwargs.items() if k != "img_size"}  # a model that takes any size
        return timm.create_model(arch, pretrained=False, **rest)


def _classifier_key(model: nn.Module) -> str | None:
    names = (getattr(model, "pretrained_cfg", {}) or {}).get("classifier")
    if isinstance(names, (tuple, list)):
        names = names[0] if names else None
    return f"{names}.weight" if names else None


def _fit_to_checkpoint(timm, arch: str, model: nn.Module, kwargs: dict, state: dict, options: SourceOptions,
                       origin: dict, size_free: bool) -> tuple[nn.Module, dict]:
    """Rebuild ``model`` with the classes (and, for absolute position embeddings, the image size) that the
    checkpoint's shapes say it was trained with. Records where each value came from in ``origin``."""
    rebuilt = dict(kwargs)
    found = classes_from_state(model, state, int(getattr(model, "num_classes", 0) or 0), _classifier_key(model))
    if found is not None:
        classes, key = found
        if options.num_classes is not None and classes != options.num_classes:
            raise UsageError(f"--num-classes {options.num_classes} contradicts the checkpoint: its classifier {key} "
                             f"has {classes} outputs")
        if classes != getattr(model, "num_classes", None):
            rebuilt["num_classes"] = classes
        origin["num_classes"] = f"checkpoint ({key})"
    size = _size_from_pos_embed(model, state) if size_free else None
    if size is not None:
        rebuilt["img_size"] = size
        origin["size"] = "checkpoint (pos_embed)"
    if rebuilt != kwargs:
        model = _create(timm, arch, rebuilt)
    return model, rebuilt


def _size_from_pos_embed(model: nn.Module, state: dict) -> tuple[int, int] | None:
    """The square image size a checkpoint's absolute position embedding was trained for, when it differs
    from the model's (a ViT fine-tuned at 384); None otherwise."""
    pos, own = state.get("pos_embed"), getattr(model, "pos_embed", None)
    embed = getattr(model, "patch_embed", None)
    if pos is None or own is None or embed is None or pos.ndim != 3 or tuple(pos.shape) == tuple(own.shape):
        return None
    grid = getattr(embed, "grid_size", None)
    patch = getattr(embed, "patch_size", None)
    if grid is None or patch is None:
        return None
    prefix = own.shape[1] - int(grid[0]) * int(grid[1])
    side = math.isqrt(max(int(pos.shape[1]) - prefix, 0))
    if side * side != pos.shape[1] - prefix or side == 0:
        return None
    return side * int(patch[0]), side * int(patch[1])


def timm_directory(directory: Path, input_shape: tuple[int, ...] | None, options: SourceOptions, source: str,
                   weights_origin: str, arch: str | None = None) -> SourceModel:
    """A directory written by timm's ``save_for_hf`` (or a timm hub repo): ``config.json`` with ``architecture``,
    ``num_classes``, ``pretrained_cfg``, optional ``label_names`` and ``model_args``, and the weights."""
    from edgekit.checkpoint import load_into
    from edgekit.sources.weights import read_weights

    timm = _timm()
    config = json.loads((directory / "config.json").read_text())
    name = config.get("architecture")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{directory}/config.json has no 'architecture'; it is not a timm model directory")
    if arch is not None and name != arch:
        raise UsageError(f"{source}: the repo's config.json builds {name!r}, not {arch!r}")
    _check_arch(timm, name)
    state, weights_file = read_weights(directory)
    here = "model files (config.json)"
    origin = {"weights": weights_origin}
    if config.get("model_type") == "timm_wrapper":  # transformers' TimmWrapper: the timm model's keys, prefixed
        state = _unwrapped(state, weights_file)
    kwargs = dict(config.get("model_args") or {})
    kwargs.pop("pretrained_cfg", None)
    classes = config.get("num_classes", config.get("num_labels"))
    if classes is not None:
        kwargs["num_classes"] = int(classes)
        origin["num_classes"] = here
    if config.get("global_pool") is not None:
        kwargs.setdefault("global_pool", config["global_pool"])
    if input_shape is not None:
        kwargs["img_size"] = tuple(input_shape[2:])
    model = _create(timm, name, kwargs)
    found = classes_from_state(model, state, int(getattr(model, "num_classes", 0) or 0), _classifier_key(model))
    if found is not None and found[0] != getattr(model, "num_classes", None):
        raise UsageError(f"{weights_file} does not fit {directory}/config.json: its classifier {found[1]} has "
                         f"{found[0]} outputs, config.json says num_classes {config.get('num_classes')}")
    if options.num_classes is not None and options.num_classes != getattr(model, "num_classes", None):
        raise UsageError(f"--num-classes {options.num_classes} contradicts {directory}: its weights have "
                         f"{getattr(model, 'num_classes', '?')} classes")
    saved = tuple((config.get("pretrained_cfg") or {}).get("input_size") or ())
    try:
        load_into(model, state, weights_file)
    except UsageError as e:
        if input_shape is not None and len(saved) == 3 and tuple(input_shape[1:]) != saved:
            raise UsageError(f"{e}; it was saved for 1x{'x'.join(map(str, saved))} (config.json): its size-dependent "
                             f"tensors need that input shape") from None
        raise
    written = config.get("pretrained_cfg") or {}
    pcfg = {**(getattr(model, "pretrained_cfg", {}) or {}), **written}
    labels = config.get("label_names") or _id2label(config)
    if labels:
        origin["labels"] = here
    for key, field in (("mean", "mean"), ("std", "std"), ("resize", "interpolation"), ("size", "input_size")):
        if field not in written:  # not in the directory: timm's defaults for the architecture
            origin.setdefault(key, "timm pretrained_cfg (not in config.json)")
    return _spec(model, name, source, pcfg, input_shape, origin, here,
                 labels=tuple(str(x) for x in labels) if isinstance(labels, list) and labels else None)


def _unwrapped(state: dict, weights_file: Path) -> dict:
    prefix = "timm_model."
    if not state or not all(k.startswith(prefix) for k in state):
        raise UsageError(f"{weights_file} is not a TimmWrapper's: its keys do not all start with {prefix}")
    return {k[len(prefix):]: v for k, v in state.items()}


def _id2label(config: dict) -> list[str] | None:
    id2label = config.get("id2label") or {}
    names = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
    if not names or any(n is None for n in names) or all(str(n) == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return [str(n) for n in names]


def _spec(model: nn.Module, arch: str, source: str, pcfg: dict, input_shape: tuple[int, ...] | None, origin: dict,
          cfg_origin: str, labels: tuple[str, ...] | None) -> SourceModel:
    num_classes = int(getattr(model, "num_classes", pcfg.get("num_classes", 1000)) or 0)
    shape = tuple(input_shape) if input_shape else (1, *pcfg.get("input_size", (3, 224, 224)))
    check_shape(shape, 1, source)
    origin.setdefault("size", "flag (--input-shape)" if input_shape else cfg_origin)
    origin.setdefault("num_classes", cfg_origin)
    interp = pcfg.get("interpolation", "bilinear")
    for key, present in (("mean", "mean" in pcfg), ("std", "std" in pcfg), ("resize", "interpolation" in pcfg)):
        origin.setdefault(key, cfg_origin if present else "default (ImageNet)")
    if interp not in RESIZE_METHODS:
        origin["resize"] = f"{cfg_origin}: {interp}, run as bilinear (edgekit resizes with {', '.join(RESIZE_METHODS)})"
    if labels is None and num_classes == 1000 and pcfg.get("num_classes", 1000) == 1000:
        labels, origin["labels"] = "imagenet", cfg_origin
    elif labels is not None:
        origin.setdefault("labels", cfg_origin)
    if isinstance(labels, tuple) and len(labels) != num_classes:
        raise UsageError(f"{source}: label_names has {len(labels)} entries for {num_classes} classes")
    spec = ModelSpec(name=arch, source=source, task=Task.CLASSIFICATION, input_shape=shape,
                     preprocess=Preprocess(size=tuple(shape[2:]), mean=tuple(pcfg.get("mean", IMAGENET_MEAN)),
                                           std=tuple(pcfg.get("std", IMAGENET_STD)),
                                           resize=interp if interp in RESIZE_METHODS else "bilinear"),
                     num_classes=num_classes, labels=labels or "", origin=origin)
    if num_classes < 1:  # no classifier: the pooled embedding (or, with global_pool='', the tokens or map)
        from edgekit.sources.features import features_spec, output_tensors, probe

        got, tensors = output_tensors(probe(model, source, shape))
        name = {2: "embedding", 3: "tokens", 4: "features"}.get(tensors[0].ndim, "output")
        return features_spec(SourceModel(model, spec), model, [name] if len(tensors) == 1 else got, tensors)
    return SourceModel(model, spec)
