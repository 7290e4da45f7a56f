"""One tree walker that puts a model in deploy mode, for edgekit's zoo and for any other model.

Re-parameterizable blocks own their merge: edgekit's zoo and timm's blocks name it ``reparameterize()``
(RepMixer / MobileOne branches merged, BatchNorm folded into the preceding conv), timm's EfficientViT-MSRA
and RepViT blocks ``fuse()`` (which returns the replacement module), RepGhost-style code
``switch_to_deploy()``. :func:`reparameterize_model` calls each block's method exactly once:

- top-down, as timm's own walk does: a block's method owns its subtree (timm's ``RepVggDw.fuse`` calls
  ``self.conv.fuse()`` itself, so its children must still be unmerged when it runs);
- a method a parent already called on a child (RepMixer calls ``self.mixer.reparameterize()``) is not
  called again: a second call is what breaks (timm's RepMixer raises AttributeError on its second call);
- a replacement returned by ``fuse()`` is not descended into, and neither is the block it replaced;
- a merged block is marked (``MERGED``), so walking a deployed model again changes nothing.

Only zero-argument methods count: ``reparameterize(mu, logvar)`` in a VAE is another thing entirely.
"""
from __future__ import annotations

import inspect

from torch import nn

METHODS = ("fuse", "reparameterize", "switch_to_deploy")  # timm's order of preference
MERGED = "_edgekit_merged"  # set on a block once its method ran


def deploy_method(module: nn.Module) -> str | None:
    """The name of ``module``'s merge method, or None."""
    for name in METHODS:
        fn = getattr(type(module), name, None)
        if fn is None or isinstance(fn, nn.Module) or not callable(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]  # after self
        except (TypeError, ValueError):
            continue
        if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            return name
    return None


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Merge re-parameterizable blocks in place, each exactly once; return the model (in eval mode).

    A root that merges by ``fuse()`` returns its replacement, which is what this returns then."""
    model.eval()
    calls: dict[int, int] = {}  # id(module) -> how many times its method ran, through the walk or a parent
    originals = []
    for module in model.modules():  # count calls a parent makes on its children, and make repeats no-ops
        name = deploy_method(module)
        if name is None:
            continue
        bound = getattr(module, name)

        def once(*args, _bound=bound, _key=id(module), _name=name, _module=module, **kwargs):
            calls[_key] = calls.get(_key, 0) + 1
            if calls[_key] > 1 or getattr(_module, MERGED, False):
                return _module if _name == "fuse" else None
            result = _bound(*args, **kwargs)
            _module.__dict__[MERGED] = True
            return result

        object.__setattr__(module, name, once)  # an instance attribute, removed below
        originals.append((module, name))
    try:
        root = _merge(model, calls)
        _walk(root, calls)
    finally:
        for module, name in originals:
            module.__dict__.pop(name, None)
    return root.eval()


def _merge(module: nn.Module, calls: dict[int, int]) -> nn.Module:
    """Call ``module``'s own method unless it already ran; return what stands in its place."""
    name = deploy_method(module)
    if name is None or calls.get(id(module)) or getattr(module, MERGED, False):
        return module
    result = getattr(module, name)()
    return result if name == "fuse" and isinstance(result, nn.Module) else module


def _walk(module: nn.Module, calls: dict[int, int]) -> None:
    for child_name, child in list(module.named_children()):
        merged = _merge(child, calls)
        if merged is not child:
            setattr(module, child_name, merged)  # fuse(): the replacement is final, not descended into
            continue
        _walk(child, calls)
