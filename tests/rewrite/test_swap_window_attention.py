"""window_attention_plugin swap: zoo and timm Swin attention export one edgekit::WindowAttention node each."""
import copy

import numpy as np
import pytest
import torch

from edgekit.stages.onnx_export import export_onnx
from edgekit.plugins import attach_functions
from edgekit.rewrite.swaps import window_attention
from tests.rewrite.harness import ops, run
from tests.rewrite.modules import zoo_window_attention


def _check(model: torch.nn.Module, shape: tuple[int, ...], expected: int) -> None:
    reference = copy.deepcopy(model)
    assert window_attention.apply(model) == expected
    assert window_attention.apply(model) == 0  # idempotent: swapped modules are not swapped again
    x = torch.randn(*shape)
    with torch.no_grad():
        want = reference(x).numpy()
        # eager: the plugin's fp32 reference replaces the module's own core (same math, regrouped)
        np.testing.assert_allclose(model(x).numpy(), want, atol=1e-5, rtol=1e-5)
    proto = export_onnx(model, shape).model
    assert ops(proto)["edgekit::WindowAttention"] == expected and "Softmax" not in ops(proto)
    got = run(attach_functions(proto), {proto.graph.input[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)  # ORT runs the function body


@pytest.mark.parametrize("shifted", [True, False])
def test_zoo_window_attention(shifted):
    _check(zoo_window_attention(shifted), (4, 9, 16), 1)


def test_timm_swin():
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(img_size=56, patch_size=4, embed_dim=16, depths=(2,), num_heads=(2,), window_size=7,
                            num_classes=5).eval()
    _check(model, (1, 3, 56, 56), 2)  # one plain, one shifted block


def test_zoo_only_variant_leaves_timm_alone():
    """OpenVINO's registry entry swaps the zoo Swin (whose naive export OpenVINO cannot convert), not timm's."""
    from edgekit.config import Target
    from edgekit.rewrite.registry import swaps_for
    from edgekit.timm_compat import import_timm

    import_timm()
    from timm.models.swin_transformer import SwinTransformer

    timm_swin = SwinTransformer(img_size=56, patch_size=4, embed_dim=16, depths=(2,), num_heads=(2,), window_size=7,
                                num_classes=5).eval()
    assert window_attention.apply_zoo_only(timm_swin) == 0
    assert window_attention.apply_zoo_only(zoo_window_attention(True)) == 1
    ov = {s.name: s for s in swaps_for(Target.OPENVINO)}[window_attention.NAME]
    assert ov.apply is window_attention.apply_zoo_only and ov.apply(copy.deepcopy(timm_swin)) == 0
