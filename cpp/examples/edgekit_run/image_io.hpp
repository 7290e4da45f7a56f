// edgekit-run's image files: decode to 8-bit RGB, write a label map as a colour PNG (stb_image).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/runtime.hpp"

struct RgbImage {
  int height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // (height, width, 3)
  edgekit::ImageView view() const { return {pixels.data(), height, width, 0}; }
};

// PNG, JPEG, BMP, PPM/PGM, TGA -> RGB (alpha dropped, grey replicated, as PIL's convert("RGB")).
// Throws std::runtime_error with stb's reason when the file cannot be decoded.
RgbImage read_rgb(const std::string& path);

// One colour per class (the PASCAL VOC palette: class bits spread over the colour's high bits).
void write_label_png(const std::string& path, const edgekit::LabelMap& labels);
