"""Model directories: what ``save_pretrained`` writes (transformers) and what timm's ``save_for_hf`` writes.

Both hold a ``config.json`` and the weights (``model.safetensors``, sharded safetensors with an index, or
``pytorch_model.bin``). A config with ``architecture`` and no ``model_type`` is timm's; one with
``model_type`` is transformers' (but for ``timm_wrapper``, transformers' wrapper of a timm model, which is read as
timm's). Weights are read without executing pickles, as ``--checkpoint`` is.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from edgekit.config import SourceOptions
from edgekit.errors import UsageError
from edgekit.sources.spec import SourceModel

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def directory_kind(directory: Path) -> str:
    """'timm' or 'transformers'; a usage error naming what is missing otherwise."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise UsageError(f"model directory {directory} has no config.json; edgekit reads directories written by "
                         f"transformers' save_pretrained or timm's save_for_hf")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{config_file} is not valid JSON ({e.__class__.__name__}); the directory is damaged") from None
    if not isinstance(config, dict):
        raise UsageError(f"{config_file} is not a JSON object; the directory is damaged")
    weight_files(directory)  # no weights is an error before anything is built
    if config.get("model_type") == "timm_wrapper":
        # transformers' TimmWrapper holds a timm model under timm_model.; it is built with timm itself (transformers
        # refuses to build it without torchvision, which edgekit does not need), as its forward is the timm model's
        return "timm"
    if "model_type" in config:
        return "transformers"
    if "architecture" in config:
        return "timm"
    raise UsageError(f"{config_file} has neither 'model_type' (transformers) nor 'architecture' (timm); edgekit "
                     f"cannot tell which library wrote it")


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a directory, safetensors preferred; a usage error when there are none."""
    for index in (SAFE_INDEX, PICKLE_INDEX):
        if (directory / index).is_file():
            try:
                shards = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise UsageError(f"{directory / index} is not a valid weight index (no weight_map)") from None
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise UsageError(f"{directory / index} names {len(missing)} missing shard(s), first: {missing[0]}")
            return [directory / s for s in shards]
    for name in (SAFE_WEIGHTS, PICKLE_WEIGHTS):
        if (directory / name).is_file():
            return [directory / name]
    raise UsageError(f"model directory {directory} has no weights ({SAFE_WEIGHTS}, {PICKLE_WEIGHTS} or a sharded "
                     f"index); save the model with save_pretrained / save_for_hf, which write them")


def read_weights(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """(state dict, the first weight file) of a directory, read without unpickling anything."""
    from edgekit.checkpoint import read_state_dict

    files = weight_files(directory)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(read_state_dict(f))
    return state, files[0]


def directory_model(directory: Path, input_shape: tuple[int, ...] | None, options: SourceOptions, source: str | None = None,
                    weights_origin: str | None = None) -> SourceModel:
    """Load a model directory (or a hub snapshot, which is one)."""
    if options.pretrained:
        raise UsageError("--pretrained applies to timm:<name> sources; a directory holds its own weights")
    kind = directory_kind(directory)
    source = source or str(directory)
    weights_origin = weights_origin or f"model directory {directory}"
    if kind == "timm":
        from edgekit.sources.timm_source import timm_directory

        return timm_directory(directory, input_shape, options, source, weights_origin)
    from edgekit.sources.hf import transformers_directory

    return transformers_directory(directory, input_shape, options, source, weights_origin)
