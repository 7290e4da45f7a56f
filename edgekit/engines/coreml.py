"""CoreML (macOS and iOS only): predictions on preprocessed tensors, turned back into the 8-bit image the
model takes. ``options``: ``compute_units`` (a ``coremltools.ComputeUnit`` name), ``mean`` and ``std`` (the
bundle's normalisation), ``input`` and ``output`` (feature names)."""
from __future__ import annotations

import logging
import platform
from pathlib import Path

import numpy as np

from .base import Engine, EngineError


class CoreMlEngine(Engine):
    def __init__(self, model, options: dict, threads: int | None = None):
        if platform.system() != "Darwin":
            raise EngineError(f"CoreML predicts only on macOS and iOS (this is {platform.system()})")
        from PIL import Image

        logging.getLogger("coremltools").setLevel(logging.ERROR)  # it warns at import where its runtime is absent
        import coremltools as ct

        self._image = Image
        self.model = ct.models.MLModel(str(Path(model)), compute_units=getattr(ct.ComputeUnit, options["compute_units"]))
        self.mean = np.asarray(options["mean"], np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(options["std"], np.float32).reshape(1, 3, 1, 1)
        self.input_names, self.output_names = [options["input"]], list(options.get("outputs") or [options["output"]])

    def infer(self, feeds: dict) -> list:
        x = feeds[self.input_names[0]]
        # the bundle's preprocessing resizes in 8 bits, so this recovers the camera image exactly
        pixels = np.clip(np.rint((x * self.std + self.mean) * 255.0), 0, 255).astype(np.uint8)[0].transpose(1, 2, 0)
        out = self.model.predict({self.input_names[0]: self._image.fromarray(pixels)})
        return [np.asarray(out[name], dtype=np.float32) for name in self.output_names]
