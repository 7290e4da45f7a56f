// Private: the backends this build was compiled with (CMake defines EDGEKIT_WITH_<NAME>).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/backend.hpp"

namespace edgekit::detail {

#ifdef EDGEKIT_WITH_OPENVINO
std::string openvino_version();
std::unique_ptr<Backend> open_openvino(const std::filesystem::path& xml, const Manifest& m, const BackendOptions& o);
#endif

#ifdef EDGEKIT_WITH_TENSORRT
std::string tensorrt_version();
std::unique_ptr<Backend> open_tensorrt(const std::filesystem::path& engine, const Manifest& m, const BackendOptions& o);
#endif

#ifdef EDGEKIT_WITH_ONNXRUNTIME
std::string onnxruntime_version();
std::unique_ptr<Backend> open_onnxruntime(const std::filesystem::path& model, const Manifest& m, const BackendOptions& o);
#endif

#ifdef EDGEKIT_WITH_EXECUTORCH
std::string executorch_version();
std::unique_ptr<Backend> open_executorch(const std::filesystem::path& program, const Manifest& m, const BackendOptions& o);
#endif

// Why an ExecuTorch program cannot run in this runtime: lowered for a delegate other than XNNPACK (the
// device it needs); empty when it can.
std::string foreign_delegate(const Manifest& m);

// "RuntimeError: ..." -> its first line, at most 400 characters (runtimes' messages run long).
std::string first_line(const std::string& message);

// For each of the manifest's outputs, in order, the index of the artifact output that carries its name.
// `artifact` holds each artifact output's names, the one to show first (an OpenVINO port has a set of
// names). Throws BundleError when the manifest lists a name twice or one the artifact (`file`) lacks.
std::vector<std::size_t> match_outputs(const Manifest& m, const std::vector<std::vector<std::string>>& artifact,
                                       const std::string& file);

}  // namespace edgekit::detail
