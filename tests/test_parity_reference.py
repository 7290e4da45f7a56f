"""The parity gate's PyTorch reference runs several images per call, with the figures of one at a time."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.config import Precision, Task, Tolerance
from edgekit.stages.parity import REFERENCE_CHUNK, run_parity, run_reference, torch_reference


class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.batches = []

    def forward(self, x):
        self.batches.append(len(x))
        return self.conv(x).mean((2, 3))


def test_groups_of_the_artifact_batch_run_together_and_split_back():
    torch.manual_seed(0)
    model = _Counting().eval()
    groups = [np.random.default_rng(i).standard_normal((2, 3, 8, 8)).astype(np.float32) for i in range(5)]
    outs = run_reference(torch_reference(model), groups)
    # 4 groups of 2 (and the first group alone: the one-time batch check), then 1 group
    assert model.batches == [REFERENCE_CHUNK, 2, 10 - REFERENCE_CHUNK]
    with torch.no_grad():
        singles = [model(torch.from_numpy(g)).numpy() for g in groups]
    assert [o.shape for o in outs] == [(2, 4)] * 5
    for out, single in zip(outs, singles):
        np.testing.assert_allclose(out, single, rtol=1e-5, atol=1e-6)  # another batch size: float rounding only


def test_a_reference_without_batches_runs_each_input():
    calls = []

    def ref(x):
        calls.append(len(x))
        return x.mean((2, 3))

    inputs = [np.full((1, 3, 2, 2), i, np.float32) for i in range(3)]
    report = run_parity(ref, ref, inputs, Task.CLASSIFICATION, Tolerance.default(Precision.FP32))
    assert calls == [1, 1, 1, 1, 1, 1] and report.passed and report.images == 3


class _MixesTheBatch(nn.Module):
    """A model whose images interact: each output is centred on the batch mean (what a batch-1 artifact never
    sees)."""

    def forward(self, x):
        y = x.mean((2, 3))
        return y - y.mean(0, keepdim=True) + 1.0


def test_a_model_whose_images_interact_runs_one_input_at_a_time():
    ref = torch_reference(_MixesTheBatch())
    inputs = [np.random.default_rng(i).standard_normal((1, 3, 4, 4)).astype(np.float32) for i in range(5)]
    outs = run_reference(ref, inputs)
    assert ref.batch_ok is False
    for out, x in zip(outs, inputs):
        np.testing.assert_array_equal(out, ref(x))  # what the model gives each image alone
    assert run_reference(ref, inputs[:2])[1].tolist() == ref(inputs[1]).tolist()  # decided once


def test_the_batch_check_runs_once():
    torch.manual_seed(0)
    model = _Counting().eval()
    ref = torch_reference(model)
    groups = [np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32) for i in range(4)]
    run_reference(ref, groups)
    run_reference(ref, groups)
    assert ref.batch_ok is True and model.batches == [4, 1, 4]  # the first call checked its first input alone


def _const(value):
    return lambda x: np.full((x.shape[0], 10), value, np.float32)


@pytest.mark.parametrize("ref, words", [
    (lambda x: np.full((x.shape[0], 10), np.nan, np.float32), "not finite (20 of 20 values"),
    (lambda x: x.reshape(x.shape[0], -1)[:, :10] * np.float32(1e-40), "numerically zero (largest magnitude"),
    (_const(0.25), "constant (every value 0.25 on every image)"),
])
def test_a_degenerate_reference_fails_with_its_diagnosis_not_a_cosine(ref, words):
    """The gate says what is wrong with the PyTorch output (NaN, numerically zero, constant) instead of failing
    on a cosine computed on noise; an artifact reproducing it exactly passes, with the diagnosis as a warning."""
    inputs = [np.random.default_rng(i).normal(size=(1, 3, 4, 4)).astype(np.float32) for i in range(2)]
    tol = Tolerance.default(Precision.FP32)
    off = run_parity(ref, lambda x: np.nan_to_num(ref(x)) + np.float32(1e-3), inputs, Task.CLASSIFICATION, tol)
    assert not off.passed and off.failures == (off.reference_problem,) and words in off.failures[0]
    assert "cosine" not in off.failures[0] and off.summary().startswith("no figures: the reference is degenerate")
    same = run_parity(ref, ref, inputs, Task.CLASSIFICATION, tol)
    assert same.passed and not same.failures and words in same.warnings[0] and "reproduces it exactly" in same.warnings[0]


def test_a_small_but_real_signal_is_not_degenerate():
    from edgekit.stages.parity import degenerate

    rng = np.random.default_rng(0)
    assert degenerate([rng.normal(size=(1, 10)) * 1e-4]) is None  # above fp32 rounding noise: compared as usual
    assert degenerate([np.zeros((1, 10))]) is not None
