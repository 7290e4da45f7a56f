"""The metrics and folder layouts of `edgekit evaluate`, on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.config import Task
from edgekit.evaluate import IGNORE_LABEL, confusion, evaluate_fn, mean_iou, read_labeled_folder
from edgekit.preprocess import Preprocess


def test_mean_iou_by_hand():
    target = np.array([[0, 0, 1, 1], [2, 2, 2, IGNORE_LABEL]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 1]])
    # class 0: inter 1, union |{t=0}|=2 + |{p=0}|=2 - 1 = 3 -> 1/3; class 1: 2 / (2 + 3 - 2) = 2/3 (the ignored
    # pixel's prediction does not count); class 2: 2 / 3
    assert mean_iou(pred, target, 3) == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert confusion(pred, target, 3).sum() == 7  # 8 pixels, one ignored
    # a class absent from both prediction and target does not count as 0
    assert mean_iou(np.zeros((2, 2), int), np.zeros((2, 2), int), 5) == 1.0


def test_classification_layout(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls / "sub").mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / cls / "sub" / "a.png")
    data = read_labeled_folder(tmp_path, Task.CLASSIFICATION)
    assert data.labels == [0, 1] and [p.parent.parent.name for p in data.paths] == ["cat", "dog"]
    (tmp_path / "10").mkdir()  # mixed names: sorted like ImageFolder
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "10" / "b.png")
    assert read_labeled_folder(tmp_path, Task.CLASSIFICATION).labels == [0, 1, 2]


def test_integer_class_folders_are_indices(tmp_path):
    for cls in ("3", "7"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / cls / "a.png")
    assert read_labeled_folder(tmp_path, Task.CLASSIFICATION).labels == [3, 7]


def test_evaluate_fn_segmentation_resizes_logits_to_the_mask(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((16, 16), np.uint8)
    mask[:, 8:] = 1
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    data = read_labeled_folder(tmp_path, Task.SEGMENTATION)
    pre = Preprocess(size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1))

    def perfect(_x):  # logits at stride 4: left half class 0, right half class 1
        logits = np.zeros((1, 2, 4, 4), np.float32)
        logits[0, 0, :, :2] = 5
        logits[0, 1, :, 2:] = 5
        return logits

    def wrong(_x):
        return perfect(_x)[:, ::-1]

    metric, agreement, ref_metric, n = evaluate_fn(perfect, data, pre, 2, reference=wrong)
    assert n == 1 and metric == 1.0 and ref_metric == 0.0 and agreement == 0.0
