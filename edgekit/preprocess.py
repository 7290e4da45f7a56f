"""The model's preprocessing, recorded in the manifest and applied identically by every runtime.

An image comes in as 8-bit RGB (H, W, 3). Preprocessing resizes it to the model's input size
(bilinear, no crop: what a camera pipeline on the device can do cheaply), scales to [0, 1],
subtracts the mean and divides by the std per channel, and lays it out as NCHW float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    layout: str = "NCHW"
    resize: str = "bilinear"
    scale: float = 1.0 / 255.0

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Preprocess:
        return Preprocess(size=tuple(d["size"]), mean=tuple(d["mean"]), std=tuple(d["std"]),
                          channel_order=d.get("channel_order", "RGB"), layout=d.get("layout", "NCHW"),
                          resize=d.get("resize", "bilinear"), scale=d.get("scale", 1.0 / 255.0))

    def resize_image(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) RGB -> uint8 (h, w, 3) at the model's size."""
        from PIL import Image

        h, w = self.size
        if image.shape[:2] == (h, w):
            return image
        resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "bicubic": Image.BICUBIC}[self.resize]
        return np.asarray(Image.fromarray(image).resize((w, h), resample=resample))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) RGB -> float32 (1, 3, h, w) (or NHWC when layout says so)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an 8-bit RGB image (H, W, 3) uint8, got {image.dtype} {image.shape}")
        x = self.resize_image(image).astype(np.float32) * self.scale
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])
