"""Model directories: what ``save_pretrained`` writes (transformers) and what timm's ``save_for_hf`` writes.

Both hold a ``config.json`` and the weights (``model.safetensors``, sharded safetensors with an index, or
``pytorch_model.bin``). A config with ``architecture`` and no ``model_type`` is timm's; one with
``model_type`` is transformers' (but for ``timm_wrapper``, transformers' wrapper of a timm model, which is read as
timm's). Weights are read without executing pickles, as ``--checkpoint`` is.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgekit.config import SourceOptions
from edgekit.errors import UsageError
from edgekit.sources.spec import SourceModel
from edgekit.sources.weights import weight_files


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


def hf_model(repo: str, input_shape, options):
    """``hf:<repo id>``: the repo's snapshot read as a model directory (transformers or timm)."""
    from edgekit.sources.hub import snapshot

    if options.pretrained:
        raise UsageError("--pretrained applies to timm:<name> sources; hf:<repo> always loads the repo's weights")
    path, origin = snapshot(repo)
    return directory_model(path, input_shape, options, source=f"hf:{repo}", weights_origin=origin)
