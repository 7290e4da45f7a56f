"""FLOPs in the manifest: counted for models whose outputs carry grad under no_grad (timm's PiT, CaiT made the
bundle stage fail), and never a reason for an export to fail."""
from __future__ import annotations

from torch import nn

from edgekit.flops import count_flops


def test_counts_a_model_the_tracker_used_to_choke_on():
    from edgekit.timm_compat import import_timm

    model = import_timm().create_model("pit_ti_224", img_size=64).eval()
    assert all(p.requires_grad for p in model.parameters())
    flops = count_flops(model, (1, 3, 64, 64))
    assert flops is not None and 5e7 < flops < 2e8  # PiT-Ti: 0.7 GFLOP at 224, ~(64/224)^2 of it here
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_a_model_the_counter_cannot_follow_gives_none():
    class Odd(nn.Module):
        def forward(self, x):
            raise RuntimeError("not traceable by the counter")

    assert count_flops(Odd(), (1, 3, 8, 8)) is None


def test_linear_flops():
    assert count_flops(nn.Linear(10, 20), (3, 10)) == 2 * 3 * 10 * 20
