"""edgekit.rewrite.matching: a rule set whose patterns need an op the model lacks is not run at all."""
from onnxscript.rewriter import pattern as orp

from edgekit.rewrite.matching import apply_patterns, needed_ops
from edgekit.rewrite.rules import fold_batchnorm, fuse_layer_norm
from tests.rewrite.harness import parse, rewrite

NO_BN = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,4,4] x, float[3,2,1,1] w) => (float[1,3,4,4] y) {
  y = Conv (x, w)
}
"""


def test_needed_ops_are_the_ops_every_match_contains():
    conv_bn = next(r for r in fold_batchnorm.RULES if r.name == "FuseBatchNormIntoConv")
    assert needed_ops(conv_bn) == {("", "BatchNormalization"), ("", "Conv")}
    # LayerNorm's variance (Pow | Mul) and division (Div | Mul-Reciprocal) are alternatives: neither is required
    layer_norm = next(r for r in fuse_layer_norm.RULES if r.name == "_LayerNorm")
    assert needed_ops(layer_norm) == {("", "Mul")}


def test_a_set_that_cannot_match_is_not_run(monkeypatch):
    """No BatchNormalization in the graph: (0, the absent reason), and onnxscript never walks the graph."""
    def walk(*_, **__):
        raise AssertionError("the rule set ran on a model without the ops it needs")

    monkeypatch.setattr(orp.RewriteRuleSet, "apply_to_model", walk)
    _, count, why = rewrite(lambda m: apply_patterns(m, fold_batchnorm.RULES, "no BN here"), parse(NO_BN))
    assert (count, why) == (0, "no BN here")
