"""hf_segformer_eager_attention swap: Hugging Face SegFormer attention exports as MatMul-Softmax-MatMul."""
import numpy as np
import pytest
import torch

from edgekit.rewrite.swaps import hf_segformer
from tests.rewrite.harness import export, ops

transformers = pytest.importorskip("transformers", reason="transformers is an optional dependency")


def test_segformer_attention_goes_eager():
    from transformers import SegformerConfig, SegformerModel

    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                             sr_ratios=[2, 1], decoder_hidden_size=32, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = SegformerModel(config).eval()

    class Wrapped(torch.nn.Module):  # tensors out, for the exporter
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m(x).last_hidden_state

    wrapped = Wrapped().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = wrapped(x).numpy()
    assert hf_segformer.apply(wrapped) == 2
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        np.testing.assert_allclose(wrapped(x).numpy(), before, atol=1e-5, rtol=1e-5)  # same math, other kernel
    histogram = ops(export(wrapped, x))
    assert histogram["Softmax"] == 2 and histogram["MatMul"] >= 4


def test_no_transformers_model_no_swap():
    assert hf_segformer.apply(torch.nn.Linear(2, 2)) == 0
