"""square_transpose_rank5: a Transpose(0, 2, 1, 3) of equal axes 1 and 2 (attention's heads <-> tokens swap
with as many heads as tokens) written at rank 5."""
import torch

from edgekit.rewrite.rules import square_transpose_rank5
from tests.fixtures.attention import _MultiQuery
from tests.rewrite.harness import assert_same, export, max_rank, ops, rewrite


def test_swaps_with_as_many_heads_as_tokens_move_to_rank_5():
    torch.manual_seed(0)
    before = export(_MultiQuery(dim=16, heads=4).eval(), torch.randn(1, 16, 2, 2))  # 4 tokens, 4 heads
    square = sum(n.op_type == "Transpose" and list(n.attribute[0].ints) == [0, 2, 1, 3] for n in before.graph.node)
    after, count, why = rewrite(square_transpose_rank5.rewrite, before)
    assert square >= 1 and count == square and why == ""
    assert max_rank(after) == 5 and ops(after)["Unsqueeze"] == ops(before).get("Unsqueeze", 0) + count
    assert ops(after)["Transpose"] == ops(before)["Transpose"]  # the same swaps, one axis longer
    assert_same(before, after, atol=0, rtol=0)  # the same elements moved


def test_swaps_of_unequal_axes_keep_rank_4():
    torch.manual_seed(0)
    before = export(_MultiQuery(dim=16, heads=4).eval(), torch.randn(1, 16, 3, 3))  # 9 tokens, 4 heads
    after, count, why = rewrite(square_transpose_rank5.rewrite, before)
    assert count == 0 and why.startswith("no Transpose(0, 2, 1, 3) of equal static axes 1 and 2 (")
    assert max_rank(after) == 4
