// edgekit C++ runtime: a bundle's manifest.json, read and checked against edgekit/manifest.schema.json.
//
// The reader refuses, in this order: a missing or unreadable manifest, a manifest whose major schema
// version is newer than this runtime reads (with "upgrade" in the message, before anything else is
// looked at), then the first field that breaks the schema ("at preprocess.mean: ..."). Unknown fields
// are accepted: within a major version the schema only grows.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace edgekit {

// The manifest schema version this runtime reads (from edgekit/manifest.schema.json at build time).
const char* schema_version();

enum class Resize { Bilinear, Bicubic, Nearest };
enum class Layout { NCHW, NHWC };

// How an 8-bit RGB image becomes the model input; the same semantics as edgekit/preprocess.py.
struct Preprocess {
  int height = 0, width = 0;  // the model's input size
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
  bool bgr = false;  // channel order the model expects
  Layout layout = Layout::NCHW;
  Resize resize = Resize::Bilinear;
  float scale = 1.0f / 255.0f;
};

// One input or output of the model. Outputs are listed in the graph's output order and are matched to
// the artifact's outputs by name. kind, stride and channels describe a features bundle's outputs;
// manifests written before they existed leave them out, and so may any output.
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;  // -1 for a dynamic dimension
  std::string dtype;
  std::string layout;         // "NCHW", "NLC", "NC", ...; empty when the manifest does not say
  std::string kind;           // "logits", "labels" (a class map), "map" (B, C, H, W), "tokens" (B, N, D), "embedding" (B, D); empty: not said
  std::int64_t stride = 0;    // a map's stride (input height / map height); 0: not said
  std::int64_t channels = 0;  // a map's C, tokens' or an embedding's D; 0: not said
};

struct FileEntry {
  std::string path;  // relative, '/'-separated, never leaves the bundle
  std::string sha256;
  std::int64_t bytes = -1;  // -1 when the manifest does not say
};

// A shape envelope (the manifest's "shapes", from `edgekit export --shapes / --dynamic-hw`): every NCHW input
// with min <= shape <= max per axis whose height and width are multiples of step.
struct Envelope {
  bool present = false;  // false: the bundle takes one input size
  std::vector<std::int64_t> min, opt, max;
  std::int64_t step = 1;
  std::string text() const;  // "1x3x256x256:1x3x512x512:1x3x1024x1024"
  // Why `shape` is outside the envelope (the words of edgekit.shapes.Envelope.refusal); empty when inside.
  std::string refusal(const std::vector<std::int64_t>& shape) const;
};

struct Manifest {
  std::string schema_version;
  std::string edgekit_version;
  std::string target;     // onnx, openvino, trt, coreml, executorch, litert
  std::string precision;  // fp32, fp16, bf16, int8
  std::string task;       // classification, segmentation, features (outputs are feature maps or embeddings)
  std::string model_name;
  std::vector<std::string> labels;  // model.labels when it lists one label per class; empty otherwise
  std::string runtime_name;     // onnxruntime, openvino, tensorrt, ...
  std::string runtime_version;  // what the artifact was built with
  std::map<std::string, std::string> runtime_facts;    // runtime's scalar fields, as text (compute_capability, ...)
  std::map<std::string, std::string> runtime_options;  // scalar options, as text (device, inference_precision, ...)
  std::map<std::string, std::vector<std::string>> runtime_option_lists;  // options that are lists of strings (outputs, ...)
  std::vector<TensorSpec> inputs, outputs;
  Preprocess preprocess;
  Envelope shapes;               // the input sizes the bundle takes, when it takes a range
  std::vector<FileEntry> files;  // files[0] is what the runtime opens
};

// Reads and checks BUNDLE_DIR/manifest.json; throws BundleError saying what is wrong.
Manifest read_manifest(const std::filesystem::path& bundle_dir);

// Parses manifest text (for tests and apps that embed the manifest); `origin` names it in errors.
Manifest parse_manifest(const std::string& text, const std::string& origin);

// Problems with the bundle's files ("model.bin was modified (sha256 differs from the manifest)",
// "model.xml is missing"); empty when every file matches its sha256.
std::vector<std::string> verify_files(const std::filesystem::path& bundle_dir, const Manifest& manifest);

// Lower-case hex sha256 of a file (OpenSSL's libcrypto); throws RuntimeFailure when unreadable.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace edgekit
