#!/usr/bin/env python3
"""Render the generated calibration images shipped in ``calib/generated/``.

int8 calibration and the parity gate must see different images (a gate scored on the images the
activation ranges came from is in-sample and flatters the quantized model). The six bundled
photographs are the default parity set; without ``--calib``, int8 calibrates on these renders
instead. They are "dead leaves" images: overlapping discs and polygons whose sizes follow a power
law (density ~ r^-3), the classic synthetic model of natural-image statistics (occlusion edges, a
1/f-like spectrum, flat regions and texture at every scale), slightly blurred like a lens and
with sensor noise. Deterministic (numpy PCG64 + Pillow drawing), so the committed files can be
checked against a fresh render (tests/test_calib.py); license: CC0, like the rest of the repository's
generated data.

Usage::

    python scripts/make_calib_images.py            # (re)write calib/generated/leaves_*.png
    python scripts/make_calib_images.py --out DIR --count 8
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COUNT = 8
SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "calib" / "generated"


def _radius(rng: np.random.Generator, r_min: float = 2.0, r_max: float = 90.0) -> float:
    """A radius with density ~ r^-3 on [r_min, r_max] (inverse-CDF sampling): many small leaves, few large."""
    u = rng.random()
    return float((r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5)


def _colour(rng: np.random.Generator, palette: np.ndarray) -> tuple[int, int, int]:
    """A colour near one of the image's palette colours (scenes have a few dominant hues)."""
    base = palette[rng.integers(len(palette))]
    c = np.clip(base + rng.normal(0, 18, 3), 0, 255)
    return tuple(int(v) for v in c)


def render(seed: int, size: int = SIZE, leaves: int = 900) -> np.ndarray:
    """One dead-leaves image, uint8 RGB (size, size, 3)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    palette = rng.uniform(0, 255, (rng.integers(3, 7), 3)) * rng.uniform(0.5, 1.0)  # darker or brighter scenes
    image = Image.new("RGB", (size, size), _colour(rng, palette))
    draw = ImageDraw.Draw(image)
    for _ in range(leaves):
        r = _radius(rng)
        cx, cy = rng.uniform(-r, size + r, 2)
        if rng.random() < 0.7:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_colour(rng, palette))
        else:  # an irregular polygon of the same extent: straight edges and corners as well as curves
            k = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = r * rng.uniform(0.5, 1.0, k)
            draw.polygon([(float(cx + q * np.cos(a)), float(cy + q * np.sin(a))) for a, q in zip(angles, radii)],
                         fill=_colour(rng, palette))
    image = image.filter(ImageFilter.GaussianBlur(0.8))  # a lens, not a vector renderer
    pixels = np.asarray(image).astype(np.float32) + rng.normal(0, 3.0, (size, size, 3))  # sensor noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def file_name(i: int) -> str:
    return f"leaves_{i:02d}.png"


def write(out: Path = OUT, count: int = COUNT) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = out / file_name(i)
        Image.fromarray(render(seed=1000 + i)).save(p, optimize=True)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--count", type=int, default=COUNT)
    args = ap.parse_args()
    for p in write(args.out, args.count):
        print(p)


if __name__ == "__main__":
    main()
