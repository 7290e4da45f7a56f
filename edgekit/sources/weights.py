"""The weight files of a model directory, read without executing pickles (as ``--checkpoint`` is)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from edgekit.errors import UsageError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


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
