"""edgekit: PyTorch vision and segmentation models to edge runtimes, with a parity gate.

The Python API mirrors the CLI one to one::

    import edgekit
    bundle = edgekit.export("efficientvit_b0", target="openvino", out="bundles/m")
    runner = edgekit.runtime.load("bundles/m")
"""
from __future__ import annotations

__version__ = "0.1.0"

from edgekit import runtime  # noqa: E402
from edgekit.api import evaluate, export, inspect, list_models, quantize, sensitivity  # noqa: E402
from edgekit import profile  # noqa: E402  (a callable package: edgekit.profile(...) is edgekit.api.profile)

__all__ = ["__version__", "evaluate", "export", "inspect", "list_models", "profile", "quantize", "runtime",
           "sensitivity"]
