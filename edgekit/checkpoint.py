"""Loading user checkpoints safely (``weights_only=True``) into a model of known architecture."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from edgekit.errors import UsageError

_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "ema", "module", "net")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict or a full training checkpoint holding one."""
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UsageError("reading .safetensors needs the safetensors package: pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types
            raise UsageError(f"checkpoint {path} is corrupt or not a safetensors file: {e}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "pickled objects"
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            raise UsageError(
                f"checkpoint {path} holds pickled Python objects beyond tensors, which edgekit will not unpickle "
                f"(weights_only=True); re-save it with torch.save(model.state_dict(), PATH) ({first})") from None
        raise UsageError(f"checkpoint {path} is corrupt or not a PyTorch file: {first}") from None
    except Exception as e:  # torch.load raises many kinds (RuntimeError, EOFError, IndexError...) on bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise UsageError(f"checkpoint {path} is corrupt or not a PyTorch file: {msg}") from None
    return _unwrap(obj, path)


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # nested training checkpoints: {"model": {"state_dict": ...}}
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next((obj[k] for k in _NESTED_KEYS if k in obj and isinstance(obj[k], dict)), None)
            if inner is None:
                break
            obj = inner
    if not (isinstance(obj, dict) and _is_state_dict(obj)):
        raise UsageError(f"checkpoint {path} holds no state dict (looked for tensors at the top level and under "
                         f"{', '.join(_NESTED_KEYS)})")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_state_dict(d: dict) -> bool:
    return bool(d) and sum(isinstance(v, torch.Tensor) for v in d.values()) >= max(1, len(d) // 2)


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path,
              convert: Callable[[dict, nn.Module], dict] | None = None) -> None:
    """Load strictly; convert from a reference layout first when the keys do not match as they are."""
    own = model.state_dict()
    if convert is not None and not set(state_dict) >= {k for k in own if not k.endswith("num_batches_tracked")}:
        state_dict = convert(state_dict, model)
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k} is {tuple(state_dict[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model")
        if missing:
            parts.append(f"{len(missing)} missing keys, first: {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, first: {', '.join(unexpected[:3])}")
        raise UsageError(f"checkpoint {path} does not fit the architecture: {'; '.join(parts)}")
    model.load_state_dict(state_dict, strict=False)
