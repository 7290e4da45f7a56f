// OpenVINO backend: the IR (model.xml + model.bin) compiled for a device with the manifest's
// inference precision. OpenVINO's CPU plugin runs bf16 by default on CPUs with AVX512-BF16, silently
// changing results, so the precision hint is always set explicitly, as edgekit/targets/openvino.py does.
#include <algorithm>

#include <openvino/core/version.hpp>
#include <openvino/runtime/core.hpp>
#include <openvino/runtime/properties.hpp>

#include "backends.hpp"
#include "edgekit/errors.hpp"

namespace edgekit::detail {
namespace {

std::string option(const Manifest& m, const std::string& key, const std::string& fallback) {
  auto it = m.runtime_options.find(key);
  return it == m.runtime_options.end() || it->second.empty() ? fallback : it->second;
}

ov::element::Type precision_type(const std::string& hint) {
  if (hint == "f16") return ov::element::f16;
  if (hint == "bf16") return ov::element::bf16;
  return ov::element::f32;
}

bool device_supports(ov::Core& core, const std::string& device, const std::string& hint) {
  const std::string cap = hint == "f16" ? "FP16" : hint == "bf16" ? "BF16" : "FP32";
  const std::vector<std::string> caps = core.get_property(device, ov::device::capabilities);
  return std::find(caps.begin(), caps.end(), cap) != caps.end();
}

Tensor to_float(const ov::Tensor& t) {
  Tensor out;
  for (std::size_t d : t.get_shape()) out.shape.push_back(static_cast<std::int64_t>(d));
  const std::size_t n = t.get_size();
  out.data.resize(n);
  const ov::element::Type type = t.get_element_type();
  if (type == ov::element::f32) {
    std::copy_n(t.data<const float>(), n, out.data.data());
  } else if (type == ov::element::f16) {
    const ov::float16* p = t.data<const ov::float16>();
    for (std::size_t i = 0; i < n; ++i) out.data[i] = static_cast<float>(p[i]);
  } else if (type == ov::element::bf16) {
    const ov::bfloat16* p = t.data<const ov::bfloat16>();
    for (std::size_t i = 0; i < n; ++i) out.data[i] = static_cast<float>(p[i]);
  } else {
    throw RuntimeFailure("OpenVINO output of type " + type.get_type_name() + " is not supported by edgekit");
  }
  return out;
}

class OpenVinoBackend : public Backend {
 public:
  OpenVinoBackend(const std::filesystem::path& xml, const Manifest& m, const BackendOptions& o) {
    const std::string device = o.device.empty() ? option(m, "device", "CPU") : o.device;
    std::string hint = option(m, "inference_precision", "f32");
    try {
      ov::Core core;
      // the Python runner does the same: a device without the hinted compute runs f32
      if (hint != "f32" && !device_supports(core, device, hint)) hint = "f32";
      ov::AnyMap config{ov::hint::inference_precision(precision_type(hint)),
                        ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
      if (o.threads > 0) config.emplace(ov::inference_num_threads(o.threads));
      model_ = core.read_model(xml.string());
      compiled_ = core.compile_model(model_, device, config);
      request_ = compiled_.create_infer_request();
      // A shape envelope's dynamic height and width: OpenVINO's dynamic-shape CPU kernels ran 7-9% slower at one
      // size than a static compile, so each size seen is compiled static on first use, as the Python engine does.
      dynamic_ = model_->inputs().size() == 1 && model_->input().get_partial_shape().is_dynamic();
      core_ = core;
      device_ = device;
      config_ = config;
    } catch (const std::exception& e) {
      throw RuntimeFailure("OpenVINO cannot compile " + xml.filename().string() + " for " + device + ": " +
                           first_line(e.what()));
    }
    // A port carries a set of tensor names (the ONNX output name among them); any of them matches.
    std::vector<std::vector<std::string>> names;
    for (const ov::Output<const ov::Node>& port : compiled_.outputs()) {
      std::vector<std::string> n;
      if (!port.get_names().empty()) n.push_back(port.get_any_name());
      for (const std::string& other : port.get_names())
        if (n.empty() || other != n.front()) n.push_back(other);
      names.push_back(std::move(n));
    }
    outputs_ = match_outputs(m, names, xml.filename().string());
  }

  std::vector<Tensor> infer(const Tensor& input) override {
    try {
      ov::Shape shape(input.shape.begin(), input.shape.end());
      // wraps the caller's buffer: no copy; OpenVINO only reads it
      ov::Tensor in(ov::element::f32, shape, const_cast<float*>(input.data.data()));
      ov::InferRequest& request = request_for(shape);
      request.set_input_tensor(in);
      request.infer();
      std::vector<Tensor> out;
      for (std::size_t port : outputs_) out.push_back(to_float(request.get_output_tensor(port)));
      return out;
    } catch (const RuntimeFailure&) {
      throw;
    } catch (const std::exception& e) {
      throw RuntimeFailure("OpenVINO inference failed: " + first_line(e.what()));
    }
  }

 private:
  // The request of the static compile for `shape` (a dynamic model), or the one compiled model's.
  ov::InferRequest& request_for(const ov::Shape& shape) {
    if (!dynamic_) return request_;
    auto hit = std::find_if(per_shape_.begin(), per_shape_.end(), [&](const auto& e) { return e.first == shape; });
    if (hit == per_shape_.end()) {
      std::shared_ptr<ov::Model> fixed = model_->clone();
      fixed->reshape(ov::PartialShape(shape));
      ov::CompiledModel compiled = core_.compile_model(fixed, device_, config_);
      if (per_shape_.size() >= kPerShapeCache) per_shape_.erase(per_shape_.begin());  // the least recent
      per_shape_.emplace_back(shape, compiled.create_infer_request());
      return per_shape_.back().second;
    }
    std::rotate(hit, hit + 1, per_shape_.end());  // most recent last
    return per_shape_.back().second;
  }

  static constexpr std::size_t kPerShapeCache = 4;  // static compiles kept (as PER_SHAPE_CACHE in Python)
  std::shared_ptr<ov::Model> model_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  bool dynamic_ = false;
  ov::Core core_;
  std::string device_;
  ov::AnyMap config_;
  std::vector<std::pair<ov::Shape, ov::InferRequest>> per_shape_;
  std::vector<std::size_t> outputs_;  // the output port of each manifest output, in manifest order
};

}  // namespace

std::string openvino_version() {
  const std::string build = ov::get_openvino_version().buildNumber;  // "2026.4.1-20426-..."
  return build.substr(0, build.find('-'));
}

std::unique_ptr<Backend> open_openvino(const std::filesystem::path& xml, const Manifest& m, const BackendOptions& o) {
  return std::make_unique<OpenVinoBackend>(xml, m, o);
}

}  // namespace edgekit::detail
