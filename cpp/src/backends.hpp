// Private: the backends this build was compiled with (CMake defines EDGEKIT_WITH_<NAME>).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

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

// "RuntimeError: ..." -> its first line, at most 400 characters (runtimes' messages run long).
std::string first_line(const std::string& message);

}  // namespace edgekit::detail
