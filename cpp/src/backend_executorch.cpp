// ExecuTorch backend: model.pte from `edgekit export --target executorch`, run by the prebuilt runtime the
// executorch wheel ships (lib/libexecutorch*.so, include/, share/cmake): the XNNPACK delegate and the
// optimized and quantized portable kernels. A program lowered for another delegate (coreml, vulkan) is
// refused with the device it needs, as the Python runtime does.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>

#include <cstdio>

#include "backends.hpp"
#include "edgekit/errors.hpp"

// The wheel ships libexecutorch_threadpool.so but not extension/threadpool/threadpool.h: the two functions
// the Python runtime's _unsafe_reset_threadpool calls, declared as ExecuTorch 1.5 declares them.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

#ifndef EDGEKIT_EXECUTORCH_VERSION
#define EDGEKIT_EXECUTORCH_VERSION "unknown"
#endif

namespace edgekit::detail {
namespace {

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::Error;

std::string error_text(Error e) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%x", static_cast<unsigned>(e));
  return std::string("error ") + hex + " (the codes are in executorch/runtime/core/error.h)";
}

// The runtime logs at Info on stderr (its CPU probe when the thread pool starts, on every run of a
// program); an app's stderr gets its errors only.
void log_errors_only(et_timestamp_t, et_pal_log_level_t level, const char* filename, const char*, size_t line,
                     const char* message, size_t length) {
  if (level == kDebug || level == kInfo) return;
  std::fprintf(stderr, "executorch %c %s:%zu] %.*s\n", static_cast<char>(level), filename, line,
               static_cast<int>(length), message);
}

class ExecuTorchBackend : public Backend {
 public:
  ExecuTorchBackend(const std::filesystem::path& program, const Manifest& m, const BackendOptions& o)
      : module_(program.string(), Module::LoadMode::Mmap) {
    const std::string elsewhere = foreign_delegate(m);
    if (!elsewhere.empty()) throw BundleError(elsewhere);
    if (o.threads > 0) {
      executorch::extension::threadpool::ThreadPool* pool = executorch::extension::threadpool::get_threadpool();
      if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(o.threads)))
        throw RuntimeFailure("ExecuTorch could not resize its thread pool to " + std::to_string(o.threads) + " threads");
    }
    const Error loaded = module_.load_forward();
    if (loaded != Error::Ok)
      throw RuntimeFailure("ExecuTorch cannot load " + program.filename().string() + ": " + error_text(loaded));
    // A .pte names neither inputs nor outputs: runtime_options.outputs holds the bundle's names in the
    // program's order, and each manifest output is matched to its position there by name.
    std::vector<std::vector<std::string>> program_outputs;
    auto listed = m.runtime_option_lists.find("outputs");
    if (listed != m.runtime_option_lists.end())
      for (const std::string& name : listed->second) program_outputs.push_back({name});
    else
      for (const TensorSpec& t : m.outputs) program_outputs.push_back({t.name});
    auto meta = module_.method_meta("forward");
    if (meta.ok() && meta->num_outputs() != program_outputs.size())
      throw BundleError(program.filename().string() + " has " + std::to_string(meta->num_outputs()) +
                        " outputs and runtime_options.outputs names " + std::to_string(program_outputs.size()) +
                        "; the manifest does not match the program: re-export the bundle");
    order_ = match_outputs(m, program_outputs, program.filename().string());
  }

  std::vector<Tensor> infer(const Tensor& input) override {
    std::vector<executorch::aten::SizesType> sizes(input.shape.begin(), input.shape.end());
    // wraps the caller's buffer: no copy; the program only reads its input
    auto x = executorch::extension::from_blob(const_cast<float*>(input.data.data()), sizes, ScalarType::Float);
    auto result = module_.forward(x);
    if (!result.ok()) throw RuntimeFailure("ExecuTorch failed to run the program: " + error_text(result.error()));
    std::vector<Tensor> out;
    for (std::size_t index : order_) {
      const executorch::runtime::EValue& v = result->at(index);
      if (!v.isTensor()) throw RuntimeFailure("ExecuTorch output " + std::to_string(index) + " is not a tensor");
      const executorch::aten::Tensor& t = v.toTensor();
      if (t.scalar_type() != ScalarType::Float)
        throw RuntimeFailure("ExecuTorch output is not float32; edgekit bundles keep float32 outputs");
      Tensor o;
      for (auto s : t.sizes()) o.shape.push_back(s);
      const float* p = t.const_data_ptr<float>();
      o.data.assign(p, p + t.numel());
      out.push_back(std::move(o));
    }
    return out;
  }

 private:
  Module module_;
  std::vector<std::size_t> order_;  // the program's output index of each manifest output, in manifest order
};

}  // namespace

std::string executorch_version() { return EDGEKIT_EXECUTORCH_VERSION; }

std::unique_ptr<Backend> open_executorch(const std::filesystem::path& program, const Manifest& m, const BackendOptions& o) {
  static const bool quiet = executorch::runtime::register_pal(
      executorch::runtime::PalImpl::create(log_errors_only, __FILE__));
  (void)quiet;
  return std::make_unique<ExecuTorchBackend>(program, m, o);
}

}  // namespace edgekit::detail
