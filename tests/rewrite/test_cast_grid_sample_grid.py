"""cast_grid_sample_grid: a double grid sampling a float image is cast to float (ONNX Runtime has no kernel
for the mixed types)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgekit.rewrite.rules import cast_grid_sample_grid
from tests.rewrite.harness import ops, parse, rewrite, run

MIXED = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,4,4] x, float[1,3,5,2] g) => (float[1,2,3,5] y) {
  gd = Cast <to = 11> (g)
  y = GridSample <mode = "bilinear", padding_mode = "zeros", align_corners = 0> (x, gd)
}
"""


def test_double_grid_is_cast_to_the_image_type():
    before = parse(MIXED)
    with pytest.raises(Exception, match="GridSample"):  # what the rule is for: ORT cannot load the mixed types
        ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    after, count, why = rewrite(cast_grid_sample_grid.rewrite, before)
    assert count == 1 and why == ""
    assert ops(after) == {"Cast": 2, "GridSample": 1}
    (grid_sample,) = [n for n in after.graph.node if n.op_type == "GridSample"]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in grid_sample.attribute}["mode"] == b"bilinear"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    g = rng.uniform(-1, 1, (1, 3, 5, 2)).astype(np.float32)
    (y,) = run(after, {"x": x, "g": g})
    # the float grid is exactly the input grid here (float -> double -> float): the plain float GridSample result
    reference = parse(MIXED.replace("gd = Cast <to = 11> (g)", "gd = Identity (g)"))
    np.testing.assert_array_equal(y, run(reference, {"x": x, "g": g})[0])


def test_matching_types_are_left_alone():
    before = parse(MIXED.replace("gd = Cast <to = 11> (g)", "gd = Identity (g)"))
    after, count, why = rewrite(cast_grid_sample_grid.rewrite, before)
    assert count == 0 and "no GridSample" in why
    assert ops(after) == {"Identity": 1, "GridSample": 1}
