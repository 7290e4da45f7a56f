// Runs edgekit's C++ preprocessing on a raw image so a test can compare it with PIL and numpy.
//
//   edgekit-preprocess-probe resize IN.rgb H W PAD OUT_H OUT_W bilinear|bicubic|nearest OUT.u8
//   edgekit-preprocess-probe tensor IN.rgb H W PAD OUT_H OUT_W METHOD RGB|BGR NCHW|NHWC SCALE M0 M1 M2 S0 S1 S2 OUT.f32
//
// IN.rgb is packed uint8 (H, W, 3); PAD extra bytes are inserted after each row before calling the
// library, to exercise ImageView::stride.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "edgekit/preprocess.hpp"

namespace {

edgekit::Resize method(const std::string& m) {
  if (m == "bilinear") return edgekit::Resize::Bilinear;
  if (m == "bicubic") return edgekit::Resize::Bicubic;
  if (m == "nearest") return edgekit::Resize::Nearest;
  std::fprintf(stderr, "unknown method %s\n", m.c_str());
  std::exit(2);
}

template <typename T>
void write(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  const bool tensor = !a.empty() && a[0] == "tensor";
  if (a.size() != (tensor ? 18u : 9u)) {
    std::fprintf(stderr, "bad arguments (see the comment at the top of preprocess_probe.cpp)\n");
    return 2;
  }
  std::ifstream f(a[1], std::ios::binary);
  std::vector<std::uint8_t> packed((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const int h = std::stoi(a[2]), w = std::stoi(a[3]), pad = std::stoi(a[4]);
  const std::size_t row = static_cast<std::size_t>(w) * 3, stride = row + pad;
  std::vector<std::uint8_t> padded(stride * h, 0xAB);  // padding bytes must never be read
  for (int y = 0; y < h; ++y) std::copy_n(&packed[y * row], row, &padded[y * stride]);
  edgekit::ImageView view{padded.data(), h, w, stride};
  const int out_h = std::stoi(a[5]), out_w = std::stoi(a[6]);
  if (!tensor) {
    write(a[8], edgekit::resize_rgb(view, out_h, out_w, method(a[7])));
    return 0;
  }
  edgekit::Preprocess p;
  p.height = out_h;
  p.width = out_w;
  p.resize = method(a[7]);
  p.bgr = a[8] == "BGR";
  p.layout = a[9] == "NHWC" ? edgekit::Layout::NHWC : edgekit::Layout::NCHW;
  p.scale = static_cast<float>(std::stod(a[10]));
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = static_cast<float>(std::stod(a[11 + c]));
    p.std[c] = static_cast<float>(std::stod(a[14 + c]));
  }
  write(a[17], edgekit::preprocess(view, p));
  return 0;
}
