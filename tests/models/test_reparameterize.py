"""One deploy walk for every model: each block's ``reparameterize`` / ``fuse`` / ``switch_to_deploy`` runs
exactly once, the deployed model computes what the trained one did, and a second walk changes nothing.

timm's FastViT used to break here: edgekit's walk merged every RepMixer, then timm's own walk called
``RepMixer.reparameterize()`` again ("'RepMixer' object has no attribute 'mixer'")."""
from __future__ import annotations

import collections
import copy

import pytest
import torch
from torch import nn

from edgekit.models import create_model, get_cfg, list_models, reparameterize_model
from edgekit.models._reparam import deploy_method
from tests.models.randomize import randomize_norms


def _count_calls(monkeypatch, model: nn.Module) -> collections.Counter:
    """Patch the merge method of each of the model's classes (the one the walk picks: RepGhost's
    ``reparameterize`` is an alias that calls ``switch_to_deploy``) to count calls per module instance."""
    calls: collections.Counter = collections.Counter()
    for cls, name in {(type(m), deploy_method(m)) for m in model.modules() if deploy_method(m)}:
        fn = getattr(cls, name)

        def counted(self, *a, _fn=fn, **kw):
            calls[id(self)] += 1
            return _fn(self, *a, **kw)

        monkeypatch.setattr(cls, name, counted)
    return calls


def _check_walk(monkeypatch, model: nn.Module, x: torch.Tensor, rtol: float) -> nn.Module:
    model.eval()
    with torch.no_grad():
        want = model(x)
    mergeable = {id(m) for m in model.modules() if deploy_method(m)}
    assert mergeable, "the model has nothing to re-parameterize; the test would prove nothing"
    calls = _count_calls(monkeypatch, model)
    with torch.no_grad():
        deployed = reparameterize_model(model)
        got = deployed(x)
    twice = {k: n for k, n in calls.items() if n > 1}
    assert not twice, f"{len(twice)} blocks merged more than once"
    # a block merged by its parent (RepMixer's own MobileOne branches) is no longer in the tree: every
    # block still reachable was merged or is a leftover of a replaced parent, never skipped
    assert set(calls) <= mergeable and len(calls) > 0
    # float32 reassociation of folded convs: 1e-5 of the output range is a few ulps of the logits
    err = float((got - want).abs().max() / (want.max() - want.min()))
    assert err < rtol, f"deployed output differs by {err:.2e} of the range"
    with torch.no_grad():
        assert torch.equal(reparameterize_model(deployed)(x), got)  # nothing left to merge, nothing breaks
    return deployed


TIMM_REPARAM = ["fastvit_t8", "mobileone_s0", "repvit_m0_9", "repghostnet_050", "efficientvit_m0"]


@pytest.mark.parametrize("name", TIMM_REPARAM)
def test_timm_blocks_merge_once(monkeypatch, name):
    from edgekit.timm_compat import import_timm

    torch.manual_seed(0)
    model = import_timm().create_model(name, pretrained=False)
    randomize_norms(model)
    deployed = _check_walk(monkeypatch, model, torch.randn(1, 3, 96, 96), rtol=1e-5)
    if name == "fastvit_t8":  # every RepMixer now one depthwise conv
        mixers = [m for m in deployed.modules() if type(m).__name__ == "RepMixer"]
        assert mixers and all(m.reparam_conv is not None and not hasattr(m, "mixer") for m in mixers)


@pytest.mark.parametrize("name", [n for n in list_models() if get_cfg(n).task == "classification"][::3])
def test_zoo_merges_once(monkeypatch, name):
    torch.manual_seed(0)
    model = create_model(name)
    randomize_norms(model)
    size = get_cfg(name).input_size[1:]
    _check_walk(monkeypatch, model, torch.randn(1, 3, *size), rtol=1e-5)


class _Fusable(nn.Module):
    """A block whose fuse() returns its replacement and calls its child's fuse() itself (timm's RepVggDw)."""

    def __init__(self):
        super().__init__()
        self.inner = _Inner()

    def forward(self, x):
        return self.inner(x) + 1

    def fuse(self):
        conv = self.inner.fuse()
        with torch.no_grad():
            conv.bias += 1
        return conv


class _Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)

    def fuse(self):
        return copy.deepcopy(self.conv)


class _Vae(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Fusable()

    def forward(self, x):
        return self.block(x)

    def reparameterize(self, mu, logvar):  # a VAE's sampling step, not a deploy merge
        raise AssertionError("called with no arguments")


def test_fuse_replaces_and_is_not_descended_and_other_reparameterize_is_left_alone(monkeypatch):
    model = _Vae()
    assert deploy_method(model) is None and deploy_method(model.block) == "fuse"
    deployed = _check_walk(monkeypatch, model, torch.randn(1, 3, 4, 4), rtol=1e-6)
    assert type(deployed.block) is nn.Conv2d  # _Fusable replaced by what its fuse() returned


def test_fastvit_exports(tmp_path):
    """The issue's reproduction, at a small input size (the walk does not depend on it)."""
    import edgekit

    bundle = edgekit.export("timm:fastvit_t8", "onnx", tmp_path / "b", input_shape="1x3x64x64", calib_size=2)
    assert bundle.parity["passed"] is True and bundle.parity["cosine_min"] > 0.99999
