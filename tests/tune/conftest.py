"""`tune` and `sweep` are judged on trained weights and real labeled data, as their users feed them: the digits
models (scripts/train_digits.py; the ``digits`` fixtures of tests/conftest.py). One export cache per module."""
from __future__ import annotations

import pytest

CLS = "scripts.train_digits:tiny_classifier_digits"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tune-cache")
