"""linear_attention_plugin swap: zoo and timm LiteMLA export one edgekit::LinearAttention node each."""
import copy

import numpy as np
import torch

from edgekit.models.efficientvit import LiteMLA
from edgekit.stages.onnx_export import export_onnx
from edgekit.plugins import attach_functions
from edgekit.rewrite.swaps import linear_attention
from tests.rewrite.harness import ops, run


def _check(model: torch.nn.Module, expected: int, shape=(1, 16, 6, 6)) -> None:
    reference = copy.deepcopy(model)
    assert linear_attention.apply(model) == expected
    x = torch.randn(*shape)
    with torch.no_grad():
        want = reference(x).numpy()
        np.testing.assert_allclose(model(x).numpy(), want, atol=1e-5, rtol=1e-5)  # the fp32 plugin reference
    proto = export_onnx(model, shape).model
    assert ops(proto)["edgekit::LinearAttention"] == expected
    got = run(attach_functions(proto), {proto.graph.input[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)  # ORT runs the function body


def test_zoo_lite_mla():
    torch.manual_seed(0)
    _check(LiteMLA(16, 16, head_dim=8).eval(), 1)


def test_zoo_quadratic_block_is_left_alone():
    assert linear_attention.apply(LiteMLA(16, 16, head_dim=8, quadratic=True)) == 0


def test_timm_lite_mla():
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.efficientvit_mit import LiteMLA as TimmLiteMLA

    torch.manual_seed(0)
    _check(TimmLiteMLA(16, 16, dim=8).eval(), 1)
