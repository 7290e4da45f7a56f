// Bundle: the checks before running (same order and words as edgekit/runtime.py), then
// preprocess -> backend -> every output by name -> logits / label map.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include <sys/utsname.h>

#include "backends.hpp"
#include "edgekit/runtime.hpp"

namespace edgekit {
namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// "2026.4.1-20426" -> {2026, 4, 1}; as edgekit.targets.base._version_tuple.
std::vector<int> version_tuple(const std::string& v) {
  std::vector<int> out;
  std::string s = v.substr(0, v.find('+'));
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t end = s.find('.', start);
    if (end == std::string::npos) end = s.size();
    std::string digits;
    for (char c : s.substr(start, end - start))
      if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
    if (digits.empty() || digits.size() > 9) break;
    out.push_back(std::stoi(digits));
    start = end + 1;
  }
  return out;
}

std::string major_minor(const std::string& v) {
  std::size_t first = v.find('.');
  std::size_t second = first == std::string::npos ? std::string::npos : v.find('.', first + 1);
  return v.substr(0, second);
}

// Where a missing backend comes from, for the message.
std::string missing_backend(const std::string& target) {
  if (target == "coreml")
    return "CoreML bundles run with Core ML on Apple devices (docs/embedding/ios-coreml.md), not with the edgekit C++ runtime";
  if (target == "litert")
    return "LiteRT bundles run with the LiteRT interpreter (docs/embedding/android-litert.md), not with the edgekit "
           "C++ runtime";
  std::string have;
  for (const auto& b : compiled_backends()) have += (have.empty() ? "" : ", ") + b.target;
  const std::string what = target == "trt" ? "TensorRT (NvInferRuntime.h, libnvinfer, CUDA runtime)"
                           : target == "onnx" ? "ONNX Runtime (onnxruntime_cxx_api.h, libonnxruntime)"
                           : target == "executorch" ? "ExecuTorch (the executorch wheel's share/cmake, or an install's)"
                                              : "OpenVINO (OpenVINOConfig.cmake)";
  return "this edgekit C++ runtime was built without the " + target + " backend (it has: " +
         (have.empty() ? "none" : have) + "); rebuild it where " + what + " is found";
}

std::string fact(const Manifest& m, const std::string& key) {
  auto it = m.runtime_facts.find(key);
  return it == m.runtime_facts.end() ? "" : it->second;
}

// The first n components of a and b, n = the fewer they name: a version without its build number (what
// getInferLibVersion reports) compares equal to any build of that release.
std::pair<std::vector<int>, std::vector<int>> common_prefix(std::vector<int> a, std::vector<int> b) {
  const std::size_t n = std::min(a.size(), b.size());
  a.resize(n);
  b.resize(n);
  return {a, b};
}

// Major versions a version-compatible engine crosses, from TensorRT's support matrix: built with 8 runs on
// 10, built with 10 runs on 11; no other pair (as CROSS_MAJOR in edgekit/targets/tensorrt_compat.py).
bool crosses_major(int built, int here) { return (built == 8 && here == 10) || (built == 10 && here == 11); }

// The engine rules of edgekit/targets/tensorrt_compat.py that need no GPU query (the compute
// capability is checked when the engine is opened): a plan file loads only in the TensorRT version
// that built it; built version-compatible, in that version or a later one of the same major, or of the
// next major where TensorRT supports it (10 -> 11).
std::vector<std::string> trt_mismatches(const Manifest& m, const std::string& here) {
  if (fact(m, "artifact") == "onnx")
    return {"this bundle holds the TensorRT-flavoured ONNX (exported with --onnx-only), not an engine: build it on "
            "the device (build/build_engine.py or trtexec.sh in the bundle), then load the bundle there"};
  std::vector<std::string> problems;
  const std::string machine = fact(m, "machine");
  struct utsname host {};
  if (!machine.empty() && uname(&host) == 0 && machine != host.machine)
    problems.push_back("the engine was built on " + machine + " and this machine is " + host.machine +
                       ": TensorRT plan files are specific to the platform that built them; rebuild it here");
  const std::vector<int> built = version_tuple(m.runtime_version), installed = version_tuple(here);
  const auto [b, h] = common_prefix(built, installed);
  if (fact(m, "version_compatible") == "true") {
    const int built_major = built.empty() ? 0 : built[0];
    const bool runs = !b.empty() && !(h < b) && (built[0] == installed[0] || crosses_major(built[0], installed[0]));
    if (!runs)
      problems.push_back("the engine was built version-compatible with TensorRT " + m.runtime_version + " and TensorRT " +
                         here + " is installed; it runs on TensorRT " + m.runtime_version + " or a later " +
                         std::to_string(built_major) + ".x" + (crosses_major(built_major, 11) ? ", or TensorRT 11.x" : "") +
                         (crosses_major(built_major, 10) ? ", or TensorRT 10.x" : "") +
                         ": install one, or rebuild the engine here");
  } else if (b.empty() || b != h) {
    problems.push_back("the engine was built with TensorRT " + m.runtime_version + " and TensorRT " + here +
                       " is installed; a plan file loads only in the version that built it: install TensorRT " +
                       m.runtime_version + ", rebuild the engine here, or export with --version-compatible");
  }
  return problems;
}

std::string dims(const std::vector<std::int64_t>& shape) {
  std::string out;
  for (std::int64_t d : shape) out += (out.empty() ? "" : "x") + std::to_string(d);
  return out;
}

// As edgekit.shapes._snap: the nearest multiple of step (halves to even, as Python's round), at least step.
std::int64_t snap(std::int64_t v, std::int64_t step) {
  const double q = std::nearbyint(static_cast<double>(v) / static_cast<double>(step));
  return std::max<std::int64_t>(step, static_cast<std::int64_t>(q) * step);
}

}  // namespace

std::string Envelope::text() const { return dims(min) + ":" + dims(opt) + ":" + dims(max); }

std::string Envelope::refusal(const std::vector<std::int64_t>& shape) const {
  static const char* axes[] = {"batch", "channels", "height", "width"};
  if (shape.size() != 4) return "input shape " + dims(shape) + " is not NCHW; the bundle takes " + text();
  for (std::size_t i = 0; i < 4; ++i)
    if (shape[i] < min[i] || shape[i] > max[i])
      return std::string("input ") + axes[i] + " " + std::to_string(shape[i]) + " is outside the bundle's envelope " +
             std::to_string(min[i]) + ".." + std::to_string(max[i]) + " (" + text() + "); resize to a size inside it";
  if (shape[2] % step || shape[3] % step)
    return "input size " + std::to_string(shape[2]) + "x" + std::to_string(shape[3]) + " is not a multiple of " +
           std::to_string(step) + ", the model's size step; the nearest inside is " +
           std::to_string(snap(shape[2], step)) + "x" + std::to_string(snap(shape[3], step));
  return "";
}

std::vector<BackendInfo> compiled_backends() {
  std::vector<BackendInfo> out;
#ifdef EDGEKIT_WITH_OPENVINO
  out.push_back({"openvino", "openvino", detail::openvino_version()});
#endif
#ifdef EDGEKIT_WITH_TENSORRT
  out.push_back({"trt", "tensorrt", detail::tensorrt_version()});
#endif
#ifdef EDGEKIT_WITH_ONNXRUNTIME
  out.push_back({"onnx", "onnxruntime", detail::onnxruntime_version()});
#endif
#ifdef EDGEKIT_WITH_EXECUTORCH
  out.push_back({"executorch", "executorch", detail::executorch_version()});
#endif
  return out;
}

std::unique_ptr<Backend> open_backend(const fs::path& bundle_dir, const Manifest& m, const BackendOptions& o) {
  const fs::path file = bundle_dir / fs::path(m.files.at(0).path);
#ifdef EDGEKIT_WITH_OPENVINO
  if (m.target == "openvino") return detail::open_openvino(file, m, o);
#endif
#ifdef EDGEKIT_WITH_TENSORRT
  if (m.target == "trt") return detail::open_tensorrt(file, m, o);
#endif
#ifdef EDGEKIT_WITH_ONNXRUNTIME
  if (m.target == "onnx") return detail::open_onnxruntime(file, m, o);
#endif
#ifdef EDGEKIT_WITH_EXECUTORCH
  if (m.target == "executorch") return detail::open_executorch(file, m, o);
#endif
  (void)file;
  (void)o;
  throw BundleError(missing_backend(m.target));
}

std::vector<std::string> preflight(const Manifest& m) {
  for (const BackendInfo& b : compiled_backends()) {
    if (b.target != m.target) continue;
    const std::string& built = m.runtime_version;
    if (m.runtime_name != b.runtime_name)
      return {"bundle was built with " + m.runtime_name + " " + built + " but this backend runs " + b.runtime_name};
    if (b.target == "trt") return trt_mismatches(m, b.version);
    if (b.target == "executorch" && !detail::foreign_delegate(m).empty()) return {detail::foreign_delegate(m)};
    std::vector<int> installed = version_tuple(b.version), wanted = version_tuple(built);
    wanted.resize(std::min<std::size_t>(wanted.size(), 2));
    if (installed < wanted)
      return {"bundle was built with " + b.runtime_name + " " + built + " but " + b.version + " is installed; upgrade " +
              b.runtime_name + " to >= " + major_minor(built)};
    return {};
  }
  return {missing_backend(m.target)};
}

Bundle::Bundle(fs::path path, Manifest manifest, std::unique_ptr<Backend> backend, bool keep_size)
    : path_(std::move(path)), manifest_(std::move(manifest)), backend_(std::move(backend)), keep_size_(keep_size) {}

Bundle Bundle::load(const fs::path& bundle_dir, const Options& options) {
  Manifest m = read_manifest(bundle_dir);
  if (options.check_files) {
    std::vector<std::string> problems = verify_files(bundle_dir, m);
    if (!problems.empty())
      throw BundleError("bundle " + bundle_dir.string() + " does not match its manifest: " + join(problems, "; ") +
                        "; re-export it");
  }
  std::vector<std::string> problems = preflight(m);
  if (!problems.empty())
    throw BundleError("bundle " + bundle_dir.string() + " cannot run here: " + join(problems, "; "));
  if (options.keep_size && !m.shapes.present)
    throw BundleError("keep_size: bundle " + bundle_dir.string() + " takes one input size (" +
                      std::to_string(m.preprocess.height) + "x" + std::to_string(m.preprocess.width) +
                      "); export it with --shapes or --dynamic-hw for a range of sizes");
  std::unique_ptr<Backend> backend = open_backend(bundle_dir, m, options.backend);
  return Bundle(bundle_dir, std::move(m), std::move(backend), options.keep_size);
}

Tensor Bundle::preprocess(const ImageView& image) const {
  Preprocess p = manifest_.preprocess;
  if (keep_size_) {  // the image's own size, when the envelope takes it (as edgekit.runtime.KeepSize)
    const Envelope& e = manifest_.shapes;
    const std::string why = e.refusal({e.opt[0], e.opt[1], image.height, image.width});
    if (!why.empty())
      throw BundleError("keep_size: the " + std::to_string(image.height) + "x" + std::to_string(image.width) +
                        " image cannot run at its own size: " + why);
    p.height = image.height;
    p.width = image.width;
  }
  Tensor t;
  t.data = edgekit::preprocess(image, p);
  t.shape = p.layout == Layout::NCHW ? std::vector<std::int64_t>{1, 3, p.height, p.width}
                                     : std::vector<std::int64_t>{1, p.height, p.width, 3};
  return t;
}

std::vector<NamedTensor> Bundle::run_all_tensor(const Tensor& x) {
  if (manifest_.shapes.present) {  // refused before the runtime sees it, in the Python runtime's words
    const std::string why = manifest_.shapes.refusal(x.shape);
    if (!why.empty()) throw BundleError("bundle " + path_.string() + ": " + why);
  }
  const std::vector<std::int64_t>& declared = manifest_.inputs.at(0).shape;
  Tensor input = x;
  if (!declared.empty() && declared[0] > 1) {  // a fixed batch: the image is repeated, as the Python runtime does
    input.shape[0] = declared[0];
    input.data.reserve(x.data.size() * static_cast<std::size_t>(declared[0]));
    for (std::int64_t b = 1; b < declared[0]; ++b) input.data.insert(input.data.end(), x.data.begin(), x.data.end());
  }
  std::vector<Tensor> outputs = backend_->infer(input);
  if (outputs.size() != manifest_.outputs.size())  // a backend bug, not the bundle's: backends match by name
    throw RuntimeFailure("the backend returned " + std::to_string(outputs.size()) + " outputs for the manifest's " +
                         std::to_string(manifest_.outputs.size()));
  std::vector<NamedTensor> named;
  named.reserve(outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    Tensor& out = outputs[i];
    if (!out.shape.empty() && out.shape[0] > 1) {  // batch element 0
      out.data.resize(out.data.size() / static_cast<std::size_t>(out.shape[0]));
      out.shape[0] = 1;
    }
    named.push_back({manifest_.outputs[i].name, std::move(out)});
  }
  return named;
}

std::vector<NamedTensor> Bundle::run_all(const ImageView& image) { return run_all_tensor(preprocess(image)); }

Tensor Bundle::run_tensor(const Tensor& input) { return std::move(run_all_tensor(input).front().tensor); }

Tensor Bundle::run(const ImageView& image) { return run_tensor(preprocess(image)); }

std::vector<Class> Bundle::classify(const ImageView& image, int k) {
  if (manifest_.task != "classification")
    throw BundleError("bundle " + path_.string() + " is a " + manifest_.task + " model; use " +
                      (manifest_.task == "features" ? "run_all()" : "segment()"));
  return top_k(run(image), k);
}

LabelMap Bundle::segment(const ImageView& image) {
  if (manifest_.task != "segmentation")
    throw BundleError("bundle " + path_.string() + " is a " + manifest_.task + " model; use " +
                      (manifest_.task == "features" ? "run_all()" : "classify()"));
  return argmax_labels(run(image));
}

const Tensor& output(const std::vector<NamedTensor>& outputs, const std::string& name) {
  std::vector<std::string> names;
  for (const NamedTensor& o : outputs) {
    if (o.name == name) return o.tensor;
    names.push_back(o.name);
  }
  throw BundleError("the bundle has no output named '" + name + "'; its outputs: " + join(names, ", "));
}

std::vector<Class> top_k(const Tensor& logits, int k) {
  const std::vector<float>& l = logits.data;
  if (l.empty()) return {};
  const double peak = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < l.size(); ++i) sum += p[i] = std::exp(static_cast<double>(l[i]) - peak);
  std::vector<int> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max(k, 0)), l.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  std::vector<Class> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back({order[i], p[order[i]] / sum});
  return out;
}

LabelMap argmax_labels(const Tensor& scores) {
  if (scores.shape.size() != 4 || scores.shape[0] != 1)
    throw RuntimeFailure("a label map needs a (1, classes, h, w) output; this model's first output has " +
                         std::to_string(scores.shape.size()) + " dimensions");
  LabelMap m;
  m.num_classes = static_cast<int>(scores.shape[1]);
  m.height = static_cast<int>(scores.shape[2]);
  m.width = static_cast<int>(scores.shape[3]);
  const std::size_t hw = static_cast<std::size_t>(m.height) * m.width;
  m.labels.assign(hw, 0);
  for (std::size_t i = 0; i < hw; ++i) {
    float best = scores.data[i];
    for (int c = 1; c < m.num_classes; ++c) {
      const float s = scores.data[static_cast<std::size_t>(c) * hw + i];
      if (s > best) {  // strict: the first maximum wins, as numpy's argmax
        best = s;
        m.labels[i] = static_cast<std::uint16_t>(c);
      }
    }
  }
  return m;
}

namespace detail {
std::string foreign_delegate(const Manifest& m) {
  auto it = m.runtime_options.find("delegate");
  const std::string delegate = it == m.runtime_options.end() ? "xnnpack" : it->second;
  if (delegate == "xnnpack") return "";
  // where each runs, as DEVICES in edgekit/targets/executorch/backend.py
  const std::string device = delegate == "coreml" ? "Apple devices (CoreML: iOS 16 / macOS 13 and later)"
                             : delegate == "qnn"  ? "Qualcomm Snapdragon devices (QNN HTP)"
                             : delegate == "vulkan" ? "GPUs with Vulkan (Android)"
                                                    : "its device";
  return "the program is lowered for " + delegate + ", which runs on " + device;
}

std::string first_line(const std::string& message) {
  std::string s = message.substr(0, message.find('\n'));
  return s.size() > 400 ? s.substr(0, 400) : s;
}

std::vector<std::size_t> match_outputs(const Manifest& m, const std::vector<std::vector<std::string>>& artifact,
                                       const std::string& file) {
  std::vector<std::string> shown;  // the artifact's outputs, for the message
  for (const auto& names : artifact) shown.push_back(names.empty() ? "(unnamed)" : names.front());
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < m.outputs.size(); ++i) {
    const std::string& name = m.outputs[i].name;
    for (std::size_t j = 0; j < i; ++j)
      if (m.outputs[j].name == name)
        throw BundleError("the manifest lists the output '" + name + "' twice (outputs[" + std::to_string(j) + "] and outputs[" +
                          std::to_string(i) + "]); the bundle is damaged or was edited");
    std::size_t found = artifact.size();
    for (std::size_t a = 0; a < artifact.size() && found == artifact.size(); ++a)
      if (std::find(artifact[a].begin(), artifact[a].end(), name) != artifact[a].end()) found = a;
    if (found == artifact.size())
      throw BundleError(file + " has no output named '" + name + "' (its outputs: " + join(shown, ", ") +
                        "); the manifest does not match the model: re-export the bundle");
    index.push_back(found);
  }
  return index;
}
}  // namespace detail

}  // namespace edgekit
