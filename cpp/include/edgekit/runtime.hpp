// edgekit C++ runtime: load a bundle, check it, run 8-bit RGB images through it.
//
//   auto bundle = edgekit::Bundle::load("bundles/efficientvit_b0-openvino");  // checks, then opens
//   edgekit::ImageView image{rgb, height, width};
//   for (auto& c : bundle.classify(image, 5)) std::printf("%d %.3f\n", c.index, c.probability);
//
// Before anything runs, load() checks the manifest's schema version and fields, every file's sha256,
// that this build has the bundle's backend, and the installed runtime's version; each mismatch is said
// plainly in one BundleError. Same checks, same words as edgekit.runtime.load in Python.
//
// Every output, by name: a features bundle (task "features") has several outputs, feature maps or
// embeddings, listed in the manifest in the graph's order. run_all() returns them all, in that order,
// each matched to the artifact's output of the same name when the bundle was opened (an artifact that
// lacks a name the manifest lists is refused with that name). Take one by name with output():
//
//   auto maps = bundle.run_all(image);                         // [{"stage1", ...}, {"stage2", ...}, ...]
//   const edgekit::Tensor& s2 = edgekit::output(maps, "stage2");  // (1, 32, 8, 8); throws, listing the names
//   const edgekit::TensorSpec& spec = bundle.manifest().outputs[1];  // kind "map", stride 8, channels 32
//
// run() keeps returning the first output only, as it always has.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/backend.hpp"
#include "edgekit/errors.hpp"
#include "edgekit/manifest.hpp"
#include "edgekit/preprocess.hpp"

namespace edgekit {

struct Options {
  BackendOptions backend;
  bool check_files = true;  // verify every file's sha256 before opening
  // A bundle with a shape envelope: each image at its own size (a camera's resolution) when the envelope takes
  // it, refused otherwise; false: resized to the export size, as always.
  bool keep_size = false;
};

struct Class {
  int index = 0;
  double probability = 0.0;  // softmax of the logits
};

// Per-pixel class at the model's output resolution (argmax over channels; ties go to the lower class).
struct LabelMap {
  int height = 0, width = 0;
  int num_classes = 0;
  std::vector<std::uint16_t> labels;  // row-major (height, width)
};

// One output of a run: the manifest's name for it and its values (batch element 0).
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Problems that stop `manifest` from running with this build (backend missing, runtime too old);
// empty when it can run. The runtime-version rule is the Python runtime's: installed >= built major.minor.
std::vector<std::string> preflight(const Manifest& manifest);

class Bundle {
 public:
  static Bundle load(const std::filesystem::path& bundle_dir, const Options& options = {});

  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& path() const { return path_; }

  // The float32 input the image becomes: (1, 3, h, w) or (1, h, w, 3), at the export size (or the image's own,
  // with Options::keep_size). run_all_tensor refuses an input outside the bundle's shape envelope.
  Tensor preprocess(const ImageView& image) const;
  // Every output for the image, in the manifest's order, batch element 0 of each.
  std::vector<NamedTensor> run_all(const ImageView& image);
  std::vector<NamedTensor> run_all_tensor(const Tensor& input);  // an already-preprocessed (1, ...) input
  // The first output for the image, batch element 0: logits (1, classes) or (1, classes, h, w).
  Tensor run(const ImageView& image);
  Tensor run_tensor(const Tensor& input);  // an already-preprocessed (1, ...) input
  std::vector<Class> classify(const ImageView& image, int k = 5);
  LabelMap segment(const ImageView& image);

 private:
  Bundle(std::filesystem::path path, Manifest manifest, std::unique_ptr<Backend> backend, bool keep_size);
  std::filesystem::path path_;
  Manifest manifest_;
  std::unique_ptr<Backend> backend_;
  bool keep_size_ = false;
};

// The output called `name` among `outputs` (what run_all returned; the reference lives as long as they
// do); throws BundleError listing the names there are.
const Tensor& output(const std::vector<NamedTensor>& outputs, const std::string& name);

// Top-k of logits (softmax in double, as edgekit.runtime.BundleRunner.classify).
std::vector<Class> top_k(const Tensor& logits, int k);
// Label map of (1, C, h, w) scores.
LabelMap argmax_labels(const Tensor& scores);

}  // namespace edgekit
