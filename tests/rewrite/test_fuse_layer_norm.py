"""fuse_layer_norm: a decomposed last-axis LayerNorm becomes one LayerNormalization (opset 17)."""
import pytest

from edgekit.rewrite.rules import fuse_layer_norm
from tests.rewrite.harness import assert_same, ops, parse, rewrite

_BODY = """
  mean = ReduceMean {axes} (x)
  d = Sub (x, mean)
  {square}
  var = ReduceMean {axes2} (sq)
  eps = Constant <value = float {{1e-5}}> ()
  ve = Add (var, eps)
  std = Sqrt (ve)
  {normalize}
  g = Constant <value = float[8] {{1, 2, 3, 4, 5, 6, 7, 8}}> ()
  b = Constant <value = float[8] {{0, 1, 0, 1, 0, 1, 0, 1}}> ()
  s = Mul (g, n)
  y = Add (s, b)
"""
OPSET17 = dict(opset=17, axes="<axes = [-1]>", axes2="<axes = [2]>", square="two = Constant <value = float {2.0}> ()\n  sq = Pow (d, two)",
               normalize="n = Div (d, std)", extra="")
OPSET18 = dict(opset=18, axes="", axes2="", square="sq = Mul (d, d)", normalize="r = Reciprocal (std)\n  n = Mul (d, r)",
               extra="")


def _model(form: dict, axes_value: str = "-1") -> str:
    body = _BODY.format(axes=form["axes"], axes2=form["axes2"], square=form["square"], normalize=form["normalize"])
    if form["opset"] >= 18:  # axes moved from attribute to input in opset 18
        body = body.replace("ReduceMean  (x)", "ReduceMean (x, ax)").replace("ReduceMean  (sq)", "ReduceMean (sq, ax)")
        body = f"  ax = Constant <value = int64[1] {{{axes_value}}}> ()\n" + body
    return f"""
<ir_version: 8, opset_import: ["" : {form['opset']}]>
g (float[2,5,8] x) => (float[2,5,8] y) {{
{body}
}}
"""


@pytest.mark.parametrize("form", [OPSET17, OPSET18], ids=["opset17-pow-div", "opset18-mul-reciprocal"])
def test_fuses_decomposed_layer_norm(form):
    before = parse(_model(form))
    after, count, why = rewrite(fuse_layer_norm.rewrite, before)
    assert count == 2 and why == ""  # normalization + scale, then the bias Add folded into it
    assert ops(after) == {"LayerNormalization": 1}
    # one-pass kernel vs the decomposed reduction order: fp32 rounding only
    assert_same(before, after, atol=1e-5, rtol=1e-5)


def test_channel_first_norm_is_not_a_layer_normalization():
    before = parse(_model(OPSET18, axes_value="1"))  # mean over axis 1 (LayerNorm2d on NCHW)
    after, count, why = rewrite(fuse_layer_norm.rewrite, before)
    assert count == 0
    assert "not only the last one" in why
    assert ops(after)["ReduceMean"] == 2
