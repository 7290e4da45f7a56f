// edgekit C++ runtime: one interface over OpenVINO, TensorRT, ONNX Runtime and ExecuTorch.
//
// Which backends exist is decided when the library is built (CMake finds each SDK's headers and
// libraries); compiled_backends() says which ones this build has.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/manifest.hpp"

namespace edgekit {

// A dense float32 tensor, row-major.
struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};

struct BackendOptions {
  int threads = 0;     // 0: the runtime's default
  std::string device;  // OpenVINO device; empty: the manifest's runtime_options.device, else CPU
};

// A loaded artifact: one float32 input in, the model's outputs out (converted to float32).
class Backend {
 public:
  virtual ~Backend() = default;
  // The manifest's outputs, in the manifest's order: each is the artifact output of that name (matched
  // when the backend was opened), never the one that happens to sit at the same position.
  virtual std::vector<Tensor> infer(const Tensor& input) = 0;
};

// What a build of this library can run.
struct BackendInfo {
  std::string target;        // the manifest's target: "openvino", "trt", "onnx", "executorch"
  std::string runtime_name;  // the manifest's runtime.name: "openvino", "tensorrt", "onnxruntime", "executorch"
  std::string version;       // of the runtime library loaded now
};

std::vector<BackendInfo> compiled_backends();

// Opens files[0] of a checked bundle with the backend for manifest.target; throws BundleError when
// this build has no such backend or the artifact has no output of a name the manifest lists,
// RuntimeFailure when the runtime cannot load the artifact.
std::unique_ptr<Backend> open_backend(const std::filesystem::path& bundle_dir, const Manifest& manifest,
                                      const BackendOptions& options);

}  // namespace edgekit
