// PIL's Image.resize for 8-bit RGB, reimplemented so the C++ runtime feeds the model the same pixels
// as the Python runtime (edgekit/preprocess.py uses PIL). Follows Pillow 13's libImaging/Resample.c
// (BILINEAR, BICUBIC: separable convolution in two passes, coefficients in 22-bit fixed point, round
// and clip to uint8 after each pass; the filter support scales with the downscale factor, which is
// what makes PIL's downscaling antialiased) and Geometry.c (ImagingScaleAffine for NEAREST).
// tests/cpp checks the result equals the installed PIL's byte for byte. Pillow <= 12 always ran the
// horizontal pass first: for strong vertical reductions it differs from Pillow 13 by +-1 in some pixels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "edgekit/preprocess.hpp"

namespace edgekit {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 8 bits of result, 2 for overshoot of negative lobes

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_filter(double x) {  // Keys' cubic convolution, a = -0.5, as PIL
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Per output position: the first input index, how many inputs, and their fixed-point weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;  // out_size * ksize
};

Coefficients precompute(int in_size, int out_size, double (*filter)(double), double filter_support) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);  // PIL's box, which is a float[4]
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = std::max(scale, 1.0);
  double support = filter_support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as PIL's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      double w = filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      double v = k[x] * (1 << kPrecisionBits);  // normalize_coeffs_8bpc
      c.weights[static_cast<std::size_t>(xx) * c.ksize + x] = static_cast<std::int32_t>(k[x] < 0 ? -0.5 + v : 0.5 + v);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(int v) {  // arithmetic shift, then clamp: PIL's clip8 lookup table
  v >>= kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// in: rows of `in_w` RGB pixels, `in_stride` bytes apart, rows [row0, row0 + rows); out: packed (rows, out_w, 3).
void horizontal(const std::uint8_t* in, std::size_t in_stride, int row0, int rows, const Coefficients& c, int out_w,
                std::uint8_t* out) {
  for (int yy = 0; yy < rows; ++yy) {
    const std::uint8_t* src = in + static_cast<std::size_t>(yy + row0) * in_stride;
    std::uint8_t* dst = out + static_cast<std::size_t>(yy) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const std::int32_t* k = &c.weights[static_cast<std::size_t>(xx) * c.ksize];
      int s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      const std::uint8_t* p = src + static_cast<std::size_t>(c.first[xx]) * 3;
      for (int x = 0; x < c.count[xx]; ++x, p += 3) {
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      dst[xx * 3 + 0] = clip8(s0);
      dst[xx * 3 + 1] = clip8(s1);
      dst[xx * 3 + 2] = clip8(s2);
    }
  }
}

// in: rows of `w` RGB pixels, `in_stride` bytes apart; `row_shift` is subtracted from the first rows.
void vertical(const std::uint8_t* in, std::size_t in_stride, int w, const Coefficients& c, int row_shift, int out_h,
              std::uint8_t* out) {
  for (int yy = 0; yy < out_h; ++yy) {
    const std::int32_t* k = &c.weights[static_cast<std::size_t>(yy) * c.ksize];
    const int ymin = c.first[yy] - row_shift, ymax = c.count[yy];
    std::uint8_t* dst = out + static_cast<std::size_t>(yy) * w * 3;
    for (int xx = 0; xx < w * 3; ++xx) {
      int s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) s += in[static_cast<std::size_t>(y + ymin) * in_stride + xx] * k[y];
      dst[xx] = clip8(s);
    }
  }
}

std::vector<std::uint8_t> resample(const ImageView& im, int out_h, int out_w, double (*filter)(double), double support) {
  const std::size_t stride = im.stride ? im.stride : static_cast<std::size_t>(im.width) * 3;
  const bool need_h = out_w != im.width, need_v = out_h != im.height;
  // Pillow >= 13 runs the vertical pass first when the height shrinks more than twice as much as the
  // width (ImagingResampleInner); each pass rounds to uint8, so the order is part of the result.
  const bool horizontal_first = !(im.height - out_h > 0 && im.height - out_h > (im.width - out_w) * 2);
  const Coefficients cv = precompute(im.height, out_h, filter, support);
  const Coefficients ch = precompute(im.width, out_w, filter, support);
  const std::size_t out_row = static_cast<std::size_t>(out_w) * 3;
  std::vector<std::uint8_t> out(static_cast<std::size_t>(out_h) * out_row);
  if (horizontal_first) {
    const std::uint8_t* src = im.data;
    std::size_t src_stride = stride;
    int row_shift = 0;
    std::vector<std::uint8_t> temp;
    if (need_h) {  // only the rows the vertical pass reads
      const int first_row = cv.first[0];
      const int last_row = cv.first[out_h - 1] + cv.count[out_h - 1];  // one past the last input row used
      temp.resize(static_cast<std::size_t>(last_row - first_row) * out_row);
      horizontal(im.data, stride, first_row, last_row - first_row, ch, out_w, temp.data());
      src = temp.data();
      src_stride = out_row;
      row_shift = first_row;
    }
    if (need_v) {
      vertical(src, src_stride, out_w, cv, row_shift, out_h, out.data());
    } else {
      for (int y = 0; y < out_h; ++y) std::memcpy(&out[y * out_row], src + static_cast<std::size_t>(y) * src_stride, out_row);
    }
    return out;
  }
  std::vector<std::uint8_t> temp(static_cast<std::size_t>(out_h) * im.width * 3);  // need_v holds here
  vertical(im.data, stride, im.width, cv, 0, out_h, temp.data());
  if (need_h) {
    horizontal(temp.data(), static_cast<std::size_t>(im.width) * 3, 0, out_h, ch, out_w, out.data());
    return out;
  }
  return temp;
}

// Geometry.c, ImagingScaleAffine: source position accumulated in double from the pixel centre.
std::vector<std::uint8_t> nearest(const ImageView& im, int out_h, int out_w) {
  const std::size_t stride = im.stride ? im.stride : static_cast<std::size_t>(im.width) * 3;
  const double ax = static_cast<double>(static_cast<float>(im.width) - 0.0f) / out_w;
  const double ay = static_cast<double>(static_cast<float>(im.height) - 0.0f) / out_h;
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  std::vector<int> xin(out_w);
  double xo = ax * 0.5;
  for (int x = 0; x < out_w; ++x, xo += ax) xin[x] = std::min(coord(xo), im.width - 1);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(out_h) * out_w * 3);
  double yo = ay * 0.5;
  for (int y = 0; y < out_h; ++y, yo += ay) {
    const std::uint8_t* row = im.data + static_cast<std::size_t>(std::min(coord(yo), im.height - 1)) * stride;
    for (int x = 0; x < out_w; ++x) std::memcpy(&out[(static_cast<std::size_t>(y) * out_w + x) * 3], row + xin[x] * 3, 3);
  }
  return out;
}

}  // namespace

std::vector<std::uint8_t> resize_rgb(const ImageView& image, int out_h, int out_w, Resize method) {
  if (!image.data || image.height <= 0 || image.width <= 0 || out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("resize_rgb: empty image or size");
  if (out_h == image.height && out_w == image.width) {  // PIL returns a copy
    const std::size_t stride = image.stride ? image.stride : static_cast<std::size_t>(image.width) * 3;
    std::vector<std::uint8_t> out(static_cast<std::size_t>(out_h) * out_w * 3);
    for (int y = 0; y < out_h; ++y)
      std::memcpy(&out[static_cast<std::size_t>(y) * out_w * 3], image.data + y * stride, static_cast<std::size_t>(out_w) * 3);
    return out;
  }
  switch (method) {
    case Resize::Bilinear: return resample(image, out_h, out_w, bilinear_filter, 1.0);
    case Resize::Bicubic: return resample(image, out_h, out_w, bicubic_filter, 2.0);
    case Resize::Nearest: return nearest(image, out_h, out_w);
  }
  throw std::invalid_argument("resize_rgb: unknown method");
}

}  // namespace edgekit
