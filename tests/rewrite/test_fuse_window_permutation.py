"""fuse_window_permutation: roll + window partition (pure row movement) becomes one Gather."""
import onnx
import torch

from edgekit.models.swin import window_partition, window_reverse
from edgekit.rewrite.rules import fuse_window_permutation
from tests.rewrite.harness import assert_same, export, ops, parse, rewrite


class _ShiftedWindows(torch.nn.Module):
    """Swin's data movement around attention: roll, rank-4 partition, a per-token op, reverse, roll back."""

    def forward(self, x):  # (1, 6, 6, 4), 3x3 windows, shift 1
        w = window_partition(torch.roll(x, (-1, -1), (1, 2)), (3, 3), (6, 6), 4)
        w = w * 2.0 + 1.0
        return torch.roll(window_reverse(w, (3, 3), (6, 6), 4), (1, 1), (1, 2))


def _constants_as_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant nodes -> initializers (what onnxslim leaves in an exported model)."""
    for node in [n for n in model.graph.node if n.op_type == "Constant"]:
        value = onnx.numpy_helper.to_array(node.attribute[0].t)
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, node.output[0]))
        model.graph.node.remove(node)
    return model


def test_roll_and_partition_become_gathers():
    before = _constants_as_initializers(export(_ShiftedWindows(), torch.randn(1, 6, 6, 4)))
    assert ops(before)["Slice"] == 8 and ops(before)["Transpose"] == 2
    after, count, why = rewrite(fuse_window_permutation.rewrite, before)
    assert count == 2 and why == ""  # partition side and reverse side
    assert ops(after) == {"Reshape": 4, "Gather": 2, "Mul": 1, "Add": 1}  # (-1, C) view + Gather + view, twice
    assert_same(before, after, atol=0, rtol=0)  # the same elements copied
    used = {i for n in after.graph.node for i in n.input}
    assert [i.name for i in after.graph.initializer if i.name not in used] == []  # the replaced chain's constants go


def test_single_transpose_is_left_alone():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,6,6,4] x) => (float[8,9,4] y) {
  s = Constant <value = int64[4] {4, 3, 2, 12}> ()
  v = Reshape (x, s)
  t = Transpose <perm = [0, 2, 1, 3]> (v)
  s3 = Constant <value = int64[3] {-1, 9, 4}> ()
  r = Reshape (t, s3)
  y = Relu (r)
}
""")
    after, count, why = rewrite(fuse_window_permutation.rewrite, before)
    assert count == 0 and "two or more copying" in why  # one Transpose is already one pass
    assert ops(after)["Transpose"] == 1


def test_channel_permutation_is_not_a_row_gather():
    before = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4,4,6] x) => (float[1,6,4,4] y) {
  a = Transpose <perm = [0, 3, 1, 2]> (x)
  b = Transpose <perm = [0, 1, 3, 2]> (a)
  y = Relu (b)
}
""")
    after, count, _ = rewrite(fuse_window_permutation.rewrite, before)
    assert count == 0  # NHWC -> NCWH moves single channels, not whole C-vectors
    assert ops(after)["Transpose"] == 2
