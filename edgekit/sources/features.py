"""Models whose outputs are features, not class scores: backbone maps (``--features``), embeddings, token
sequences, and models with several named outputs.

Every such model is exported through one of the wrappers below, which return a tuple of tensors in a fixed
order; :func:`features_spec` names them and describes each (kind, shape, stride, channels) for the
manifest. Names are what a downstream head asks for:

| source | outputs |
|---|---|
| zoo model or timm model with ``--features 1,2,3`` | ``stage1``, ``stage2``, ``stage3`` (the stage indices, 0-based as timm's ``out_indices``) |
| a model returning a dict of tensors | its keys, in the dict's order |
| a model returning a tuple of tensors | ``output0``, ``output1``, ... |
| timm model with ``num_classes=0`` | ``embedding`` (B, D), or ``tokens`` / ``features`` without pooling |
| transformers ``*Backbone`` (a directory, or a factory returning one) | its ``out_features`` (``stage1``, ...) |
| transformers base ``*Model`` (likewise) | ``last_hidden_state`` and, when the model has one, ``pooler_output`` |
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from edgekit.config import Task
from edgekit.errors import UsageError
from edgekit.sources.spec import SourceModel, describe_outputs, shape_text


class StageMaps(nn.Module):
    """A zoo model's stage outputs: ``forward_intermediates(x)`` lists every stage's (B, C, H, W) map, in
    order of stride; this keeps those at ``indices``. The classifier or decoder is never run."""

    def __init__(self, model: nn.Module, indices: Sequence[int]):
        super().__init__()
        self.model = model
        self.indices = tuple(indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.model.forward_intermediates(x)
        return tuple(maps[i] for i in self.indices)


class TimmStageMaps(StageMaps):
    """A timm model's stage outputs through its ``forward_intermediates`` (NCHW for every family that has it)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.model.forward_intermediates(x, indices=list(self.indices), intermediates_only=True)
        return tuple(maps)


class DictOutputs(nn.Module):
    """A model returning a dict of tensors, as a tuple in ``keys`` order (ONNX outputs are positional)."""

    def __init__(self, model: nn.Module, keys: Sequence[str]):
        super().__init__()
        self.model = model
        self.keys = tuple(keys)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[k] for k in self.keys)


class BackboneMaps(nn.Module):
    """A transformers ``*Backbone``: (B, 3, H, W) -> its ``feature_maps`` (one per ``out_features`` stage)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(pixel_values=x).feature_maps)


class HiddenStates(nn.Module):
    """A transformers base model: (B, 3, H, W) -> the named fields of its output (``last_hidden_state``...)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(pixel_values=x)
        return tuple(getattr(out, n) for n in self.names)


def transformers_outputs(model: nn.Module, out) -> tuple[nn.Module, list[str]] | None:
    """A transformers model given as a module (``package.module:factory`` returning one): a ``*Backbone`` as its
    ``feature_maps`` named by ``out_features``, a base model as its ``last_hidden_state`` (and ``pooler_output``);
    None for anything else."""
    if not (isinstance(out, dict) and type(out).__module__.startswith("transformers")):
        return None
    maps = out.get("feature_maps")
    if maps is not None:
        names = list(getattr(getattr(model, "config", None), "out_features", None) or [])
        return BackboneMaps(model), names if len(names) == len(maps) else [f"stage{i}" for i in range(len(maps))]
    names = [k for k in ("last_hidden_state", "pooler_output") if out.get(k) is not None]
    return (HiddenStates(model, names), names) if names else None


def output_tensors(out) -> tuple[list[str], list[torch.Tensor]]:
    """(names, tensors) of what a forward pass returned: a tensor ("output"), a tuple or list of tensors
    ("output0", ...) or a dict of tensors (its keys)."""
    if isinstance(out, torch.Tensor):
        return ["output"], [out]
    if isinstance(out, dict):
        items = list(out.items())
        bad = [k for k, v in items if not isinstance(v, torch.Tensor)]
        if bad or not items:
            raise UsageError(f"the model returns a dict whose values are not all tensors ({', '.join(map(str, bad))}); "
                             f"return tensors only")
        return [str(k) for k, _ in items], [v for _, v in items]
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
        return [f"output{i}" for i in range(len(out))], list(out)
    raise UsageError(f"the model returns {type(out).__name__}; edgekit exports models returning a tensor, a tuple "
                     f"of tensors or a dict of tensors")


def probe(model: nn.Module, source: str, input_shape: tuple[int, ...]):
    """The model's raw output on a zero image of ``input_shape``; a model that cannot run it is a usage error."""
    model.eval()
    with torch.no_grad():
        try:
            return model(torch.zeros(*input_shape))
        except UsageError:
            raise
        except Exception as e:  # the model's forward may raise anything
            raise UsageError(f"{source} fails on an input of shape {shape_text(input_shape)}: "
                             f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def features_spec(loaded: SourceModel, model: nn.Module, names: Sequence[str] | None = None,
                  tensors: Sequence[torch.Tensor] | None = None) -> SourceModel:
    """``loaded`` as a features model: ``model`` (returning its outputs) and a spec naming and describing them.
    ``names`` overrides the names the output structure gives (``output_tensors``); ``tensors``: ``model``'s
    outputs on a zero input when the caller has run it already (else it is run here)."""
    spec = loaded.spec
    if tensors is None:
        got_names, tensors = output_tensors(probe(model, spec.source, spec.input_shape))
    else:
        got_names = [f"output{i}" for i in range(len(tensors))]
    names = list(names) if names is not None else got_names
    if len(names) != len(tensors):
        raise UsageError(f"{spec.source}: expected {len(names)} outputs ({', '.join(names)}), the model returns "
                         f"{len(tensors)}")
    outputs = describe_outputs(names, tensors, spec.input_shape, Task.FEATURES)
    origin = {k: v for k, v in spec.origin.items() if k not in ("num_classes", "labels")}
    loaded.model = model
    loaded.spec = replace(spec, task=Task.FEATURES, num_classes=0, labels="", output_stride=1, outputs=outputs,
                          tolerance={k: v for k, v in spec.tolerance.items() if not k.endswith("_agreement")},
                          origin=origin)
    return loaded


def with_stage_maps(loaded: SourceModel, indices: Sequence[int]) -> SourceModel:
    """``--features indices``: the model's stage maps at those indices, named ``stage<i>``. Zoo models give
    them through ``forward_intermediates(x)``, timm models through theirs (``indices=...``)."""
    model, source = loaded.model, loaded.spec.source
    inner = getattr(model, "model", model)
    every = None  # a zoo model's maps, from the run that counts them (features_spec need not run it again)
    if source.startswith("timm:") or (hasattr(inner, "pretrained_cfg") and not loaded.family):
        available = _timm_stages(inner, source)
        wrapper = TimmStageMaps
    elif loaded.family and hasattr(inner, "forward_intermediates"):
        every = probe(_AllStages(inner), source, loaded.spec.input_shape)
        available = len(every)
        wrapper = StageMaps
    else:
        raise UsageError(f"--features needs a model with stages: a zoo model or timm:<name>; {source} gives no stage "
                         f"maps (a model of your own can return a dict of named maps instead)")
    bad = [i for i in indices if i >= available]
    if bad:
        raise UsageError(f"--features {','.join(map(str, indices))}: {source} has stages "
                         f"{', '.join(map(str, range(available)))}; {', '.join(map(str, bad))} is not one of them")
    return features_spec(loaded, wrapper(inner, indices), [f"stage{i}" for i in indices],
                         [every[i] for i in indices] if every is not None else None)


class _AllStages(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_intermediates(x)


def _timm_stages(model: nn.Module, source: str) -> int:
    if not hasattr(model, "forward_intermediates"):
        raise UsageError(f"--features: {source} has no forward_intermediates in this timm version, so its stage maps "
                         f"cannot be taken; upgrade timm, or export a model of your own that returns them")
    info = getattr(model, "feature_info", None)
    if not info:
        raise UsageError(f"--features: {source} does not list its stages (feature_info); it cannot give stage maps")
    return len(info)
