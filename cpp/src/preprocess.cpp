// uint8 RGB -> the model's float32 input, in numpy's float32 operation order (edgekit/preprocess.py):
// x = uint8 * scale; channel order; (x - mean) / std; layout. Built without FP contraction
// (CMake: ISO C++, -ffp-contract=off) so each step rounds as numpy's does.
#include <stdexcept>

#include "edgekit/preprocess.hpp"

namespace edgekit {

std::vector<float> preprocess(const ImageView& image, const Preprocess& p) {
  if (!image.data || image.height <= 0 || image.width <= 0)
    throw std::invalid_argument("preprocess: expected an 8-bit RGB image (H, W, 3), got an empty one");
  const std::vector<std::uint8_t> rgb = resize_rgb(image, p.height, p.width, p.resize);
  const std::size_t hw = static_cast<std::size_t>(p.height) * p.width;
  std::vector<float> out(hw * 3);
  for (std::size_t i = 0; i < hw; ++i) {
    for (int c = 0; c < 3; ++c) {
      const int src = p.bgr ? 2 - c : c;  // BGR: channel c of the input is channel 2 - c of the image
      float x = static_cast<float>(rgb[i * 3 + src]) * p.scale;
      x = (x - p.mean[c]) / p.std[c];
      if (p.layout == Layout::NCHW) out[static_cast<std::size_t>(c) * hw + i] = x;
      else out[i * 3 + c] = x;
    }
  }
  return out;
}

}  // namespace edgekit
