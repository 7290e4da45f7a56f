"""The export pipeline's own stages, in the order :func:`edgekit.pipeline.export` runs them (loading is
:mod:`edgekit.sources`, rewrites :mod:`edgekit.rewrite`, int8 :mod:`edgekit.quant`, the build
:mod:`edgekit.targets`):

- :mod:`.onnx_export`: deploy mode (re-parameterization) and the ONNX export;
- :mod:`.parity`: the parity gate, the PyTorch reference against the built artifact, and the one comparator;
- :mod:`.bundle`: staging the bundle directory and renaming it into place.

This file imports nothing, so importing one stage loads only that stage.
"""
