"""The C++ preprocessing equals the Python runtime's byte for byte: PIL's resize (down, up, odd
factors, each method, padded rows) and the float steps (scale, channel order, mean/std, layout)."""
from __future__ import annotations

import subprocess

import numpy as np
import PIL
import pytest
from PIL import Image

from edgekit.calib import bundled_images_dir, read_image
from edgekit.preprocess import Preprocess

# the first run builds the C++ runtime with CMake (~1 min on 2 cores), cached per source version
pytestmark = pytest.mark.slow

SIZES = [  # (in_h, in_w) -> (out_h, out_w): heavy and light downscales, upscales, one axis only, identity
    ((300, 451), (64, 64)), ((37, 53), (224, 160)), ((97, 61), (96, 61)), ((61, 97), (61, 31)),
    ((400, 600), (133, 201)), ((5, 7), (5, 7)), ((1, 1), (3, 2)), ((512, 512), (7, 500)), ((700, 90), (224, 80)),
]
PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13


def vertical_first(h, w, oh, ow) -> bool:
    """Pillow >= 13 runs the vertical pass first here (the C++ runtime follows Pillow 13)."""
    return ow != w and h - oh > 0 and h - oh > (w - ow) * 2


def probe(cpp, tmp_path, image: np.ndarray, pad: int, *args) -> bytes:
    src, out = tmp_path / "in.rgb", tmp_path / "out.bin"
    src.write_bytes(np.ascontiguousarray(image).tobytes())
    h, w = image.shape[:2]
    subprocess.run([str(cpp.preprocess_probe), args[0], str(src), str(h), str(w), str(pad), *map(str, args[1:]), str(out)],
                   check=True, timeout=60)
    return out.read_bytes()


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "nearest"])
def test_resize_equals_pil(cpp, tmp_path, method):
    rng = np.random.default_rng(0)
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[method]
    for k, ((h, w), (oh, ow)) in enumerate(SIZES):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if k == 0:  # a photograph too: smooth regions and edges, not only noise
            image = np.asarray(Image.fromarray(read_image(bundled_images_dir() / "chelsea.png")))
        expected = np.asarray(Image.fromarray(image).resize((ow, oh), resample=resample))
        got = np.frombuffer(probe(cpp, tmp_path, image, 5 * (k % 2), "resize", oh, ow, method), np.uint8)
        got = got.reshape(oh, ow, 3)
        if method != "nearest" and not PILLOW_13 and vertical_first(h, w, oh, ow):
            # Pillow <= 12 always resampled horizontally first; each pass rounds to uint8
            assert np.abs(got.astype(int) - expected).max() <= 1, (method, (h, w), (oh, ow))
        else:
            assert np.array_equal(got, expected), (method, (h, w), (oh, ow))


@pytest.mark.parametrize("order,layout", [("RGB", "NCHW"), ("BGR", "NHWC")])
def test_tensor_equals_numpy(cpp, tmp_path, order, layout):
    image = read_image(bundled_images_dir() / "coffee.png")
    p = Preprocess(size=(96, 80), mean=(0.5, 0.406, 0.485), std=(0.229, 0.25, 0.5), channel_order=order, layout=layout,
                   resize="bicubic", scale=1 / 255)
    got = np.frombuffer(probe(cpp, tmp_path, image, 3, "tensor", 96, 80, "bicubic", order, layout, repr(p.scale),
                              *map(repr, p.mean), *map(repr, p.std)), np.float32)
    expected = p(image)
    assert np.array_equal(got.reshape(expected.shape), expected)
