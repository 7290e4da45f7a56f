"""edgekit: PyTorch vision and segmentation models to edge runtimes, with a parity gate.

The Python API mirrors the CLI one to one::

    import edgekit
    bundle = edgekit.export("efficientvit_b0", target="openvino", out="bundles/m")
    runner = edgekit.runtime.load("bundles/m")
"""
from __future__ import annotations

from edgekit import runtime
from edgekit.api import diagnose, evaluate, export, inspect, list_models, profile, quantize, sensitivity
from edgekit.version import __version__

__all__ = ["__version__", "diagnose", "evaluate", "export", "inspect", "list_models", "profile", "quantize", "runtime",
           "sensitivity"]
