// TensorRT backend (TensorRT 10 name-based I/O API): deserialize the bundle's engine, copy the
// input to the GPU, enqueueV3, copy outputs back. Compiled only where TensorRT's headers and
// libnvinfer and the CUDA runtime are found (a Jetson with JetPack, a GPU server); edgekit's CI has
// neither, so this file is not compiled there (see docs/embedding/cpp-tensorrt-jetson.md).
#include <cstring>
#include <fstream>
#include <iterator>

#include <NvInferRuntime.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "backends.hpp"
#include "edgekit/errors.hpp"

namespace edgekit::detail {
namespace {

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kERROR) last_error = msg;
  }
  std::string last_error;
};

Logger& logger() {
  static Logger instance;
  return instance;
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw RuntimeFailure(std::string("CUDA ") + what + " failed: " + cudaGetErrorString(status));
}

std::size_t element_size(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    default: throw RuntimeFailure("TensorRT I/O tensors must be float32 or float16 for edgekit");
  }
}

struct Binding {
  std::string name;
  bool input = false;
  nvinfer1::DataType type = nvinfer1::DataType::kFLOAT;
  void* device = nullptr;
  std::size_t bytes = 0;
};

std::string fact(const Manifest& m, const std::string& key) {
  auto it = m.runtime_facts.find(key);
  return it == m.runtime_facts.end() ? "" : it->second;
}

class TensorRtBackend : public Backend {
 public:
  TensorRtBackend(const std::filesystem::path& engine_file, const Manifest& m) {
    auto cc = m.runtime_facts.find("compute_capability");
    if (cc != m.runtime_facts.end()) {  // an engine runs only on the GPU architecture it was built for
      cudaDeviceProp prop{};
      check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
      const std::string here = std::to_string(prop.major) + "." + std::to_string(prop.minor);
      auto level = m.runtime_facts.find("hardware_compatibility");
      const bool ampere_plus = level != m.runtime_facts.end() && level->second == "ampere+";
      if (ampere_plus ? prop.major < 8 : cc->second != here)
        throw BundleError("the engine was built for compute capability " + (ampere_plus ? std::string("8.0 and later") : cc->second) +
                          " and this GPU (" + prop.name + ") is compute capability " + here + "; rebuild it here");
    }
    std::ifstream f(engine_file, std::ios::binary);
    std::vector<char> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger()));
    if (runtime_) {
      // A version-compatible engine carries the lean runtime as host code, which the runtime refuses to run
      // unless allowed (trtexec --versionCompatible and Polygraphy allow it the same way).
      if (fact(m, "version_compatible") == "true") runtime_->setEngineHostCodeAllowed(true);
      const std::string dla = fact(m, "dla_core");  // a DLA engine runs on the core it was built for
      if (!dla.empty() && dla != "null") runtime_->setDLACore(std::stoi(dla));
      engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    }
    if (!engine_) throw RuntimeFailure("TensorRT cannot deserialize " + engine_file.filename().string() + ": " + logger().last_error);
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw RuntimeFailure("TensorRT cannot create an execution context: " + logger().last_error);
    for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
      Binding b;
      b.name = engine_->getIOTensorName(i);
      b.input = engine_->getTensorIOMode(b.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
      b.type = engine_->getTensorDataType(b.name.c_str());
      element_size(b.type);
      bindings_.push_back(b);
    }
    // Outputs are read back by tensor name (the ONNX output names the engine was built from), in the manifest's order
    std::vector<std::size_t> output_bindings;
    std::vector<std::vector<std::string>> output_names;
    for (std::size_t i = 0; i < bindings_.size(); ++i) {
      if (bindings_[i].input) continue;
      output_bindings.push_back(i);
      output_names.push_back({bindings_[i].name});
    }
    for (std::size_t i : match_outputs(m, output_names, engine_file.filename().string()))
      outputs_.push_back(output_bindings[i]);
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");  // last: a constructor that throws runs no destructor
  }

  ~TensorRtBackend() override {
    for (Binding& b : bindings_) cudaFree(b.device);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::vector<Tensor> infer(const Tensor& input) override {
    nvinfer1::Dims dims{};
    dims.nbDims = static_cast<int32_t>(input.shape.size());
    for (int i = 0; i < dims.nbDims; ++i) dims.d[i] = input.shape[i];
    std::vector<Tensor> outputs;
    for (Binding& b : bindings_) {
      if (b.input && !context_->setInputShape(b.name.c_str(), dims))
        throw RuntimeFailure("TensorRT rejects input shape for " + b.name + ": " + logger().last_error);
    }
    for (Binding& b : bindings_) {  // output shapes are known once the input shape is set
      nvinfer1::Dims d = context_->getTensorShape(b.name.c_str());
      std::size_t count = 1;
      for (int i = 0; i < d.nbDims; ++i) count *= static_cast<std::size_t>(d.d[i]);
      const std::size_t bytes = count * element_size(b.type);
      if (bytes > b.bytes) {
        cudaFree(b.device);
        check(cudaMalloc(&b.device, bytes), "cudaMalloc");
        b.bytes = bytes;
      }
      context_->setTensorAddress(b.name.c_str(), b.device);
      if (b.input) upload(b, input.data, count);
    }
    if (!context_->enqueueV3(stream_)) throw RuntimeFailure("TensorRT enqueueV3 failed: " + logger().last_error);
    for (std::size_t i : outputs_) {
      const Binding& b = bindings_[i];
      nvinfer1::Dims d = context_->getTensorShape(b.name.c_str());
      Tensor t;
      for (int i = 0; i < d.nbDims; ++i) t.shape.push_back(d.d[i]);
      std::size_t count = 1;
      for (auto s : t.shape) count *= static_cast<std::size_t>(s);
      t.data = download(b, count);
      outputs.push_back(std::move(t));
    }
    return outputs;
  }

 private:
  void upload(const Binding& b, const std::vector<float>& data, std::size_t count) {
    if (data.size() != count) throw RuntimeFailure("input has " + std::to_string(data.size()) + " values, engine wants " + std::to_string(count));
    if (b.type == nvinfer1::DataType::kFLOAT) {
      check(cudaMemcpyAsync(b.device, data.data(), count * 4, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      return;
    }
    std::vector<__half> half(count);
    for (std::size_t i = 0; i < count; ++i) half[i] = __float2half(data[i]);
    check(cudaMemcpyAsync(b.device, half.data(), count * 2, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // `half` dies at return
  }

  std::vector<float> download(const Binding& b, std::size_t count) {
    std::vector<float> out(count);
    if (b.type == nvinfer1::DataType::kFLOAT) {
      check(cudaMemcpyAsync(out.data(), b.device, count * 4, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      return out;
    }
    std::vector<__half> half(count);
    check(cudaMemcpyAsync(half.data(), b.device, count * 2, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    for (std::size_t i = 0; i < count; ++i) out[i] = __half2float(half[i]);
    return out;
  }

  // TensorRT 10 objects are released with delete
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  std::vector<Binding> bindings_;
  std::vector<std::size_t> outputs_;  // the binding of each manifest output, in manifest order
};

}  // namespace

std::string tensorrt_version() {
  const int v = getInferLibVersion();  // major * 10000 + minor * 100 + patch since TensorRT 10
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

std::unique_ptr<Backend> open_tensorrt(const std::filesystem::path& engine, const Manifest& m, const BackendOptions&) {
  return std::make_unique<TensorRtBackend>(engine, m);
}

}  // namespace edgekit::detail
