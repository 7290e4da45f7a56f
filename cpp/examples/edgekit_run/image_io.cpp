// stb_image decodes PNG losslessly (the same pixels as PIL); its JPEG decoder differs from PIL's
// libjpeg-turbo by a few levels per pixel (IDCT and chroma upsampling), so parity is checked on PNGs.
#include "image_io.hpp"

#include <stdexcept>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

RgbImage read_rgb(const std::string& path) {
  int w = 0, h = 0, channels = 0;
  stbi_uc* data = stbi_load(path.c_str(), &w, &h, &channels, 3);
  if (!data) throw std::runtime_error("cannot read image " + path + ": " + stbi_failure_reason());
  RgbImage im;
  im.height = h;
  im.width = w;
  im.pixels.assign(data, data + static_cast<std::size_t>(w) * h * 3);
  stbi_image_free(data);
  return im;
}

void write_label_png(const std::string& path, const edgekit::LabelMap& labels) {
  std::vector<std::uint8_t> rgb(labels.labels.size() * 3);
  for (std::size_t i = 0; i < labels.labels.size(); ++i) {
    unsigned c = labels.labels[i];
    std::uint8_t r = 0, g = 0, b = 0;
    for (int bit = 7; bit >= 0 && c; --bit, c >>= 3) {
      r |= static_cast<std::uint8_t>(((c >> 0) & 1) << bit);
      g |= static_cast<std::uint8_t>(((c >> 1) & 1) << bit);
      b |= static_cast<std::uint8_t>(((c >> 2) & 1) << bit);
    }
    rgb[i * 3 + 0] = r;
    rgb[i * 3 + 1] = g;
    rgb[i * 3 + 2] = b;
  }
  if (!stbi_write_png(path.c_str(), labels.width, labels.height, 3, rgb.data(), labels.width * 3))
    throw std::runtime_error("cannot write " + path);
}
