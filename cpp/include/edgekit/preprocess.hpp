// edgekit C++ runtime: the bundle's preprocessing, bit-identical to the Python runtime's.
//
// edgekit/preprocess.py resizes with PIL (Image.resize, BILINEAR / BICUBIC / NEAREST). PIL's
// bilinear and bicubic are separable convolutions whose support widens with the downscale factor
// (antialiased), computed in 8-bit fixed point with rounding and clipping after each pass. resize_rgb
// reproduces that algorithm (Pillow 13's libImaging/Resample.c and, for NEAREST, Geometry.c), so the
// same uint8 image gives the same uint8 pixels (Pillow <= 12 ordered the two passes differently:
// +-1 in some pixels when the height shrinks much more than the width); the float steps then follow numpy's float32 order
// (x * scale, channel order, (x - mean) / std, layout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "edgekit/manifest.hpp"

namespace edgekit {

// An 8-bit RGB image the caller owns: rows of width * 3 bytes, `stride` bytes apart (0 = packed).
struct ImageView {
  const std::uint8_t* data = nullptr;
  int height = 0, width = 0;
  std::size_t stride = 0;
};

// uint8 (H, W, 3) -> uint8 (out_h, out_w, 3), packed; what PIL's Image.resize gives.
std::vector<std::uint8_t> resize_rgb(const ImageView& image, int out_h, int out_w, Resize method);

// uint8 RGB (H, W, 3) -> float32 (1, 3, h, w) (or (1, h, w, 3) for NHWC), as edgekit.preprocess.Preprocess.
std::vector<float> preprocess(const ImageView& image, const Preprocess& p);

}  // namespace edgekit
