// ONNX Runtime backend: model.onnx, or model.ort from `edgekit export --target onnx --mobile` (ORT
// picks the format from the file). Compiled only where ONNX Runtime's C/C++ headers and library are
// found: the onnxruntime Python wheel ships neither, so this file is not compiled on edgekit's CI.
#include <onnxruntime_cxx_api.h>

#include "backends.hpp"
#include "edgekit/errors.hpp"

namespace edgekit::detail {
namespace {

Ort::Env& env() {  // one per process, as ONNX Runtime asks
  static Ort::Env instance(ORT_LOGGING_LEVEL_ERROR, "edgekit");
  return instance;
}

// The level the bundle records (runtime_options.graph_optimization_level; ORT_ENABLE_ALL when absent): a
// bundle repaired past a fused kernel that breaks parity records a lower one, and must be opened with it.
GraphOptimizationLevel optimization_level(const Manifest& m) {
  auto it = m.runtime_options.find("graph_optimization_level");
  const std::string level = it == m.runtime_options.end() ? "ORT_ENABLE_ALL" : it->second;
  if (level == "ORT_DISABLE_ALL") return GraphOptimizationLevel::ORT_DISABLE_ALL;
  if (level == "ORT_ENABLE_BASIC") return GraphOptimizationLevel::ORT_ENABLE_BASIC;
  if (level == "ORT_ENABLE_EXTENDED") return GraphOptimizationLevel::ORT_ENABLE_EXTENDED;
  if (level == "ORT_ENABLE_ALL" || level.empty()) return GraphOptimizationLevel::ORT_ENABLE_ALL;
  throw BundleError("runtime_options.graph_optimization_level '" + level +
                      "' is not an ONNX Runtime level (ORT_ENABLE_ALL, ORT_ENABLE_EXTENDED, ORT_ENABLE_BASIC, "
                      "ORT_DISABLE_ALL)");
}

class OnnxRuntimeBackend : public Backend {
 public:
  OnnxRuntimeBackend(const std::filesystem::path& model, const Manifest& m, const BackendOptions& o) : session_(nullptr) {
    std::vector<std::vector<std::string>> session_outputs;
    const GraphOptimizationLevel level = optimization_level(m);  // the parity run's setting
    try {
      Ort::SessionOptions so;
      so.SetGraphOptimizationLevel(level);
      if (o.threads > 0) {
        so.SetIntraOpNumThreads(o.threads);
        so.SetInterOpNumThreads(1);
      }
      session_ = Ort::Session(env(), model.c_str(), so);
      Ort::AllocatorWithDefaultOptions allocator;
      input_name_ = session_.GetInputNameAllocated(0, allocator).get();
      for (std::size_t i = 0; i < session_.GetOutputCount(); ++i)
        session_outputs.push_back({session_.GetOutputNameAllocated(i, allocator).get()});
    } catch (const std::exception& e) {
      throw RuntimeFailure("ONNX Runtime cannot load " + model.filename().string() + ": " + first_line(e.what()));
    }
    // Run() is asked for the manifest's outputs by name, in the manifest's order
    for (std::size_t i : match_outputs(m, session_outputs, model.filename().string()))
      output_names_.push_back(session_outputs[i].front());
  }

  std::vector<Tensor> infer(const Tensor& input) override {
    try {
      Ort::MemoryInfo info = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
      // wraps the caller's buffer: no copy; ONNX Runtime only reads inputs
      Ort::Value x = Ort::Value::CreateTensor<float>(info, const_cast<float*>(input.data.data()), input.data.size(),
                                                     input.shape.data(), input.shape.size());
      const char* in_names[] = {input_name_.c_str()};
      std::vector<const char*> out_names;
      for (const auto& n : output_names_) out_names.push_back(n.c_str());
      std::vector<Ort::Value> values =
          session_.Run(Ort::RunOptions{nullptr}, in_names, &x, 1, out_names.data(), out_names.size());
      std::vector<Tensor> out;
      for (Ort::Value& v : values) {
        Ort::TensorTypeAndShapeInfo t = v.GetTensorTypeAndShapeInfo();
        if (t.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
          throw RuntimeFailure("ONNX Runtime output is not float32; edgekit bundles keep float32 outputs");
        Tensor o;
        o.shape = t.GetShape();
        const float* p = v.GetTensorData<float>();
        o.data.assign(p, p + t.GetElementCount());
        out.push_back(std::move(o));
      }
      return out;
    } catch (const RuntimeFailure&) {
      throw;
    } catch (const std::exception& e) {
      throw RuntimeFailure("ONNX Runtime inference failed: " + first_line(e.what()));
    }
  }

 private:
  Ort::Session session_;
  std::string input_name_;
  std::vector<std::string> output_names_;  // the manifest's outputs, in its order
};

}  // namespace

std::string onnxruntime_version() { return OrtGetApiBase()->GetVersionString(); }

std::unique_ptr<Backend> open_onnxruntime(const std::filesystem::path& model, const Manifest& m, const BackendOptions& o) {
  return std::make_unique<OnnxRuntimeBackend>(model, m, o);
}

}  // namespace edgekit::detail
