"""Model sources. Each resolves to a :class:`SourceModel`: the torch module plus a :class:`ModelSpec` saying
what its input is, how images are preprocessed, what the output means, how closely it must match, and
where each of those values came from.

| source | module |
|---|---|
| zoo name (``efficientvit_b0``) | :mod:`edgekit.sources.torch_sources` |
| ``package.module:factory``, ``model.pt2`` | :mod:`edgekit.sources.torch_sources` |
| ``timm:<name>[.<tag>]`` | :mod:`edgekit.sources.timm_source` |
| a directory written by ``save_pretrained`` / ``save_for_hf`` | :mod:`edgekit.sources.directory` |
| ``hf:<repo id>`` | :mod:`edgekit.sources.hub` |
"""
from __future__ import annotations

from pathlib import Path

from edgekit.config import SourceOptions
from edgekit.errors import UsageError
from edgekit.sources.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, SourceModel, apply_options

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelSpec", "SourceModel", "load_source"]


def load_source(source: str, checkpoint: Path | None = None, input_shape: tuple[int, ...] | None = None,
                options: SourceOptions | None = None) -> SourceModel:
    """Resolve ``source`` to a model in eval mode, loading ``checkpoint`` into it when given, with the user's
    preprocessing, labels and classes (``options``) applied over what the source says."""
    from edgekit.sources import torch_sources

    options = options or SourceOptions()
    state = None
    if checkpoint is not None:
        from edgekit.checkpoint import read_state_dict

        state = read_state_dict(Path(checkpoint))
    if options.pretrained and not source.startswith("timm:"):
        raise UsageError("--pretrained applies to timm:<name> sources; hf:<repo> and model directories hold their "
                         "own weights, other sources take --checkpoint")
    if source.startswith("hf:"):
        from edgekit.sources.directory import hf_model

        loaded = hf_model(source[len("hf:"):], input_shape, options)
    elif source.startswith("timm:"):
        from edgekit.sources.timm_source import timm_model

        loaded = timm_model(source[len("timm:"):], input_shape, options, state, checkpoint)
    elif Path(source).is_dir():
        from edgekit.sources.directory import directory_model

        loaded = directory_model(Path(source), input_shape, options)
    elif Path(source).suffix in (".pt2", ".ep"):
        loaded = torch_sources.exported_program(Path(source), input_shape)
    elif ":" in source or "/" in source:
        if "/" in source and ":" not in source:
            raise UsageError(f"model source {source!r} is not a directory; a model directory needs config.json and "
                             f"weights, a hub repo is written hf:{source}")
        loaded = torch_sources.factory_model(source, input_shape)
    else:
        loaded = torch_sources.zoo_model(source, input_shape, options, state)
    if state is not None:
        from edgekit.checkpoint import load_into

        convert = None
        if loaded.family:
            from edgekit.models._registry import checkpoint_filter

            convert = checkpoint_filter(loaded.spec.name)
        load_into(loaded.model, state, Path(checkpoint), convert)
        loaded.spec.origin["weights"] = f"checkpoint {checkpoint}"
    if options.features is not None:
        from edgekit.sources.features import with_stage_maps

        loaded = with_stage_maps(loaded, options.features)
    loaded = apply_options(loaded, options)
    loaded.model.eval()
    return loaded
