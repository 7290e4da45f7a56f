"""The metrics and folder layouts of `edgekit evaluate`, on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.config import Task
from edgekit.accuracy import IGNORE_LABEL, confusion, evaluate_fn, mean_iou, read_labeled_folder
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


def _image_classes(tmp_path, n: int) -> tuple:
    """n one-colour images in class folders 0/1 (image i's red value is i * 10, its class i % 2)."""
    for i in range(n):
        (tmp_path / str(i % 2)).mkdir(exist_ok=True)
        Image.fromarray(np.full((4, 4, 3), i * 10, np.uint8)).save(tmp_path / str(i % 2) / f"{i:02d}.png")
    return read_labeled_folder(tmp_path, Task.CLASSIFICATION), Preprocess(size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1))


def _by_red(x: np.ndarray) -> np.ndarray:
    """Class logits of each image from its red value: images of red 0, 20, 40 ... (even i) are class 0."""
    red = np.rint(x[:, 0, 0, 0] * 255 / 10).astype(int)
    return np.stack([(red % 2 == 0), (red % 2 == 1)], 1).astype(np.float32)


class _Batchable:
    batchable = True

    def __init__(self, fail_above_one: bool = False):
        self.batches, self.fail_above_one = [], fail_above_one

    def __call__(self, x):
        self.batches.append(len(x))
        if self.fail_above_one and len(x) > 1:
            raise RuntimeError("this model runs at batch 1 only")
        return _by_red(x)


def test_a_pytorch_reference_runs_in_chunks_with_the_same_figures(tmp_path):
    """A reference that takes any batch (a PyTorch model) runs several images at once; the figures are those of
    running it one image at a time, and every image meets its own reference output."""
    from edgekit.stages.parity import REFERENCE_CHUNK

    data, pre = _image_classes(tmp_path, 2 * REFERENCE_CHUNK + 3)
    flipped = lambda x: _by_red(x)[:, ::-1]  # noqa: E731 - the candidate gets every image wrong
    one_at_a_time = evaluate_fn(flipped, data, pre, 2, reference=_by_red)
    ref = _Batchable()
    assert evaluate_fn(flipped, data, pre, 2, reference=ref) == one_at_a_time == (0.0, 0.0, 1.0, len(data))
    assert ref.batches == [REFERENCE_CHUNK, REFERENCE_CHUNK, 3]
    limited = _Batchable()
    assert evaluate_fn(_by_red, data, pre, 2, reference=limited, limit=5)[1:] == (1.0, 1.0, 5)
    assert limited.batches == [5]


def test_a_reference_that_fails_batched_runs_one_image_at_a_time(tmp_path):
    data, pre = _image_classes(tmp_path, 5)
    ref = _Batchable(fail_above_one=True)
    assert evaluate_fn(_by_red, data, pre, 2, reference=ref) == (1.0, 1.0, 1.0, 5)
    assert ref.batches == [5, 1, 1, 1, 1, 1]
