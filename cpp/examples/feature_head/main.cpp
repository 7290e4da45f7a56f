// feature-head: your own head on a features bundle's maps, taken by name.
//
// A features bundle (task "features") returns several named feature maps instead of class scores. An
// application runs the bundle once, takes the maps it wants by name and feeds its own head. This head is
// the smallest useful one, a segmentation head: per map a 1x1 convolution to K classes, each result
// upsampled (nearest) to the finest map's size, the sum's argmax per pixel.
//
//   feature-head BUNDLE IMAGE HEAD.f32 --classes K [--maps stage1,stage2,stage3]
//
// HEAD.f32 is raw little-endian float32: for each map, in --maps order, K x C weights (class 0's C
// weights, then class 1's, ...) then K biases, C being that map's channels: K * (C1 + 1 + C2 + 1 + ...)
// values in all. Prints JSON: {"height", "width", "classes", "maps", "labels" (row-major), "scores_checksum"
// (the sum of every summed score)}. Exit status: 0 done; 2 the bundle, a map name or HEAD.f32 was refused
// (the message says why); 1 a step failed.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgekit/runtime.hpp"
#include "image_io.hpp"

namespace {

const char* kUsage = "usage: feature-head BUNDLE IMAGE HEAD.f32 --classes K [--maps stage1,stage2,stage3]\n";

struct Refused : std::runtime_error {  // the command line, a map or the head file does not fit: exit 2
  using std::runtime_error::runtime_error;
};

// One map's 1x1 convolution to K classes.
struct Conv1x1 {
  std::size_t channels = 0;
  std::vector<float> weight;  // (K, C), row-major
  std::vector<float> bias;    // (K)
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts{""};
  for (char c : text) {
    if (c == sep) parts.emplace_back();
    else parts.back().push_back(c);
  }
  return parts;
}

// The head's parameters for maps of `channels` (in --maps order), read from raw little-endian float32.
std::vector<Conv1x1> read_head(const std::string& path, std::size_t classes, const std::vector<std::size_t>& channels) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Refused("cannot read " + path);
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t values = 0;
  for (std::size_t c : channels) values += classes * (c + 1);
  if (bytes.size() != values * 4)
    throw Refused(path + " has " + std::to_string(bytes.size()) + " bytes; " + std::to_string(classes) +
                  " classes on these maps need " + std::to_string(values * 4) + " (K * (C + 1) float32 per map)");
  std::size_t at = 0;
  auto next = [&] {  // little-endian whatever this machine's byte order
    const std::uint32_t u = bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | std::uint32_t(bytes[at + 3]) << 24;
    at += 4;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  };
  std::vector<Conv1x1> head;
  for (std::size_t c : channels) {
    Conv1x1 conv{c, std::vector<float>(classes * c), std::vector<float>(classes)};
    for (float& w : conv.weight) w = next();
    for (float& b : conv.bias) b = next();
    head.push_back(std::move(conv));
  }
  return head;
}

// scores (K, H, W) += the 1x1 convolution of `map` (1, C, h, w), upsampled to (H, W): nearest, target
// pixel (y, x) takes source (y * h / H, x * w / W), as PyTorch's interpolate(mode="nearest").
void add_head(const edgekit::Tensor& map, const Conv1x1& conv, std::size_t H, std::size_t W, std::vector<float>& scores) {
  const std::size_t C = conv.channels, h = map.shape[2], w = map.shape[3], K = conv.bias.size();
  std::vector<float> small(K * h * w);  // the convolution at the map's own resolution
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t i = 0; i < h * w; ++i) {
      float s = conv.bias[k];
      for (std::size_t c = 0; c < C; ++c) s += conv.weight[k * C + c] * map.data[c * h * w + i];
      small[k * h * w + i] = s;
    }
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t y = 0; y < H; ++y)
      for (std::size_t x = 0; x < W; ++x) scores[(k * H + y) * W + x] += small[(k * h + y * h / H) * w + x * w / W];
}

int run(int argc, char** argv) {
  std::vector<std::string> positional, maps{"stage1", "stage2", "stage3"};
  std::size_t classes = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--classes" || arg == "--maps") && i + 1 >= argc) throw Refused(arg + " needs a value");
    if (arg == "--classes") classes = static_cast<std::size_t>(std::max(0, std::atoi(argv[++i])));
    else if (arg == "--maps") maps = split(argv[++i], ',');
    else if (arg.rfind("--", 0) == 0) throw Refused("unknown option " + arg);
    else positional.push_back(arg);
  }
  if (positional.size() != 3 || classes == 0) throw Refused("expected BUNDLE IMAGE HEAD.f32 and --classes K >= 1");

  // 1. Load the bundle (checks its manifest, files and runtime) and run the image: every output, by name.
  edgekit::Bundle bundle = edgekit::Bundle::load(positional[0]);
  RgbImage image;
  try {
    image = read_rgb(positional[1]);
  } catch (const std::runtime_error& e) {
    throw Refused(e.what());
  }
  const std::vector<edgekit::NamedTensor> outputs = bundle.run_all(image.view());

  // 2. Take the maps by name (output() throws, listing the bundle's names, for a name it lacks).
  std::vector<const edgekit::Tensor*> taken;
  std::vector<std::size_t> channels;
  std::size_t H = 0, W = 0;  // the finest map's size: the label map's
  for (const std::string& name : maps) {
    const edgekit::Tensor& t = edgekit::output(outputs, name);
    if (t.shape.size() != 4 || t.shape[0] != 1)
      throw Refused("output '" + name + "' is not a (1, C, H, W) map; this head needs maps");
    taken.push_back(&t);
    channels.push_back(static_cast<std::size_t>(t.shape[1]));
    if (static_cast<std::size_t>(t.shape[2] * t.shape[3]) > H * W) {
      H = static_cast<std::size_t>(t.shape[2]);
      W = static_cast<std::size_t>(t.shape[3]);
    }
  }

  // 3. The head: sum of the upsampled 1x1 convolutions, then argmax (ties go to the lower class).
  const std::vector<Conv1x1> head = read_head(positional[2], classes, channels);
  std::vector<float> scores(classes * H * W, 0.0f);
  for (std::size_t m = 0; m < taken.size(); ++m) add_head(*taken[m], head[m], H, W, scores);
  std::vector<int> labels(H * W, 0);
  for (std::size_t i = 0; i < H * W; ++i)
    for (std::size_t k = 1; k < classes; ++k)
      if (scores[k * H * W + i] > scores[labels[i] * H * W + i]) labels[i] = static_cast<int>(k);
  double checksum = 0.0;
  for (float s : scores) checksum += s;

  std::cout << nlohmann::json{{"height", H}, {"width", W}, {"classes", classes}, {"maps", maps},
                              {"labels", labels}, {"scores_checksum", checksum}}.dump()
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Refused& e) {
    std::cerr << "feature-head: error: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const edgekit::BundleError& e) {  // a damaged bundle, or a map name it lacks
    std::cerr << "feature-head: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "feature-head: error: " << e.what() << "\n";
    return 1;
  }
}
