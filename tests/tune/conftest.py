"""Trained digits models (scripts/train_digits.py, cached) and one export cache per test module: `tune` and
`sweep` are judged on trained weights and real labeled data, as their users feed them."""
from __future__ import annotations

import pytest

from tests.digits import trained

CLS = "scripts.train_digits:tiny_classifier_digits"
SEG = "scripts.train_digits:tiny_segmenter_digits"


@pytest.fixture(scope="module")
def digits():
    return trained("tiny_classifier")


@pytest.fixture(scope="module")
def digits_seg(digits):
    return trained("tiny_segmenter")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tune-cache")
