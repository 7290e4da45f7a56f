"""Models trained on scikit-learn's handwritten digits by scripts/train_digits.py, for tests that must judge
trained weights (quantization, the end-to-end user flow). Trained once and cached under ``$EDGEKIT_CACHE``
(default ~/.cache/edgekit/digits); a later run reuses the checkpoint."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest


def trained(name: str) -> Path:
    """The digits cache dir (labeled folders written) with recipe ``name``'s checkpoint (trained if missing)."""
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn (pip install scikit-learn)")
    import torch

    from scripts import train_digits as td

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    td.cache_dir().mkdir(parents=True, exist_ok=True)
    try:
        with open(td.cache_dir() / ".lock", "w") as lock:  # one trainer at a time: test workers share the cache
            fcntl.flock(lock, fcntl.LOCK_EX)
            root = td.write_folders()
            td.train(td.RECIPES[name], log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    return root
