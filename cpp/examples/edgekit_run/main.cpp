// edgekit-run: run an edgekit bundle on an image from C++, the way `edgekit.runtime.load(bundle)(image)`
// does in Python: same checks, same preprocessing, same runtime.
//
//   edgekit-run bundles/efficientvit_b0-openvino cat.png              top-5 classes
//   edgekit-run bundles/segformer_b0-openvino street.png --out seg.png  colourised label map
//   edgekit-run bundles/my_backbone-openvino cat.png                    every output: shape, kind, stride, statistics
//   edgekit-run BUNDLE IMAGE --json --raw                                machine-readable, with the logits
//   edgekit-run BUNDLE --check                                           checks only
//
// A features bundle (or any bundle with several outputs) reports every output by name; with --json they
// are "outputs": [{"name", "shape", "kind", "stride", "channels", "mean", "min", "max"}, ...] in the
// manifest's order ("data" too with --raw), besides "output", the first one.
//
// Exit status: 0 done; 2 the bundle or the command line was refused (the message says why); 1 a step failed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgekit/runtime.hpp"
#include "image_io.hpp"

namespace {

const char* kUsage =
    "usage: edgekit-run BUNDLE IMAGE [options]\n"
    "       edgekit-run BUNDLE --check\n"
    "       edgekit-run --version\n"
    "options:\n"
    "  --top K            classes to print for a classification bundle (default 5)\n"
    "  --out FILE.png     write the colourised label map of a segmentation bundle\n"
    "  --json             print the result as JSON on stdout\n"
    "  --raw              with --json: include the model's outputs and the label map\n"
    "  --threads N        runtime threads (default: the runtime's)\n"
    "  --device NAME      OpenVINO device (default: the bundle's, else CPU)\n"
    "  --repeat N         run N times; report the median latency\n"
    "  --dump-input FILE  write the preprocessed float32 input tensor (raw, native byte order)\n"
    "  --keep-size        a bundle with a shape envelope: run the image at its own size (refused outside it)\n"
    "  --no-check-files   skip the sha256 check of the bundle's files\n"
    "  --check            check the manifest, the files and the runtime version, then exit\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An option the bundle has no use for (--top on a features bundle): said in one line, without the usage.
struct OptionMisfit : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string bundle, image, out, dump_input, device;
  std::optional<int> top;  // classes to print; 5 when not given
  int threads = 0, repeat = 1;
  bool json = false, raw = false, check_only = false, check_files = true, version = false, keep_size = false;
};

int to_int(const std::string& flag, const std::string& v, int minimum) {
  try {
    std::size_t used = 0;
    int i = std::stoi(v, &used);
    if (used == v.size() && i >= minimum) return i;
  } catch (const std::exception&) {
  }
  throw UsageError(flag + " needs an integer >= " + std::to_string(minimum) + ", got '" + v + "'");
}

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--top") a.top = to_int(arg, value(), 1);
    else if (arg == "--out") a.out = value();
    else if (arg == "--json") a.json = true;
    else if (arg == "--raw") a.raw = true;
    else if (arg == "--threads") a.threads = to_int(arg, value(), 1);
    else if (arg == "--device") a.device = value();
    else if (arg == "--repeat") a.repeat = to_int(arg, value(), 1);
    else if (arg == "--dump-input") a.dump_input = value();
    else if (arg == "--no-check-files") a.check_files = false;
    else if (arg == "--keep-size") a.keep_size = true;
    else if (arg == "--check") a.check_only = true;
    else if (arg == "--version") a.version = true;
    else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    else if (arg.rfind("--", 0) == 0) throw UsageError("unknown option " + arg);
    else positional.push_back(arg);
  }
  if (a.version) return a;
  if (positional.size() != (a.check_only ? 1u : 2u)) throw UsageError(a.check_only ? "--check takes BUNDLE only" : "expected BUNDLE and IMAGE");
  a.bundle = positional[0];
  if (!a.check_only) a.image = positional[1];
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One output as JSON: its name, shape and what the manifest says it holds (null where it does not say).
nlohmann::json describe_output(const edgekit::NamedTensor& o, const edgekit::TensorSpec& spec, bool raw) {
  const std::vector<float>& v = o.tensor.data;
  double sum = 0.0;
  for (float x : v) sum += x;
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  nlohmann::json j = {{"name", o.name},
                      {"shape", o.tensor.shape},
                      {"kind", spec.kind.empty() ? nlohmann::json() : nlohmann::json(spec.kind)},
                      {"stride", spec.stride > 0 ? nlohmann::json(spec.stride) : nlohmann::json()},
                      {"channels", spec.channels > 0 ? nlohmann::json(spec.channels) : nlohmann::json()},
                      {"mean", v.empty() ? 0.0 : sum / static_cast<double>(v.size())},
                      {"min", v.empty() ? 0.0f : *lo},
                      {"max", v.empty() ? 0.0f : *hi}};
  if (raw) j["data"] = v;
  return j;
}

std::string shape_text(const nlohmann::json& shape) {
  std::string s;
  for (const auto& d : shape) s += (s.empty() ? "" : "x") + std::to_string(d.get<std::int64_t>());
  return s;
}

nlohmann::json describe(const edgekit::Bundle& b) {
  const edgekit::Manifest& m = b.manifest();
  return {{"bundle", b.path().string()},     {"model", m.model_name},
          {"target", m.target},              {"precision", m.precision},
          {"task", m.task},                  {"runtime", {{"name", m.runtime_name}, {"built_with", m.runtime_version}}}};
}

int version() {
  std::cout << "edgekit C++ runtime, manifest schema " << edgekit::schema_version() << "; backends:";
  for (const auto& b : edgekit::compiled_backends()) std::cout << " " << b.runtime_name << " " << b.version;
  std::cout << "\n";
  return 0;
}

int check(const Args& a) {
  edgekit::Manifest m = edgekit::read_manifest(a.bundle);
  std::vector<std::string> problems = edgekit::verify_files(a.bundle, m);
  std::string joined;
  for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
  if (!problems.empty()) throw edgekit::BundleError("bundle " + a.bundle + " does not match its manifest: " + joined + "; re-export it");
  for (const auto& p : edgekit::preflight(m)) joined += (joined.empty() ? "" : "; ") + p;
  if (!joined.empty()) throw edgekit::BundleError("bundle " + a.bundle + " cannot run here: " + joined);
  if (a.json) std::cout << nlohmann::json{{"bundle", a.bundle}, {"ok", true}, {"schema_version", m.schema_version}}.dump() << "\n";
  else std::cout << "bundle " << a.bundle << " is intact and can run here (" << m.target << ", " << m.runtime_name << " " << m.runtime_version << ")\n";
  return 0;
}

int run(const Args& a) {
  edgekit::Options options;
  options.backend.threads = a.threads;
  options.backend.device = a.device;
  options.check_files = a.check_files;
  options.keep_size = a.keep_size;
  edgekit::Bundle bundle = edgekit::Bundle::load(a.bundle, options);
  const edgekit::Manifest& manifest = bundle.manifest();
  const bool features = manifest.task == "features";
  if (features && (a.top || !a.out.empty())) {
    std::string names;
    for (const auto& o : manifest.outputs) names += (names.empty() ? "" : ", ") + o.name;
    throw OptionMisfit(std::string(a.top ? "--top" : "--out") + " is for classification and segmentation bundles; " +
                       a.bundle + " is a features bundle (outputs: " + names + "): drop the option");
  }
  RgbImage image;
  try {
    image = read_rgb(a.image);
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());
  }

  std::vector<double> pre_ms, infer_ms;
  edgekit::Tensor input;
  std::vector<edgekit::NamedTensor> outputs;
  for (int i = 0; i < a.repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    input = bundle.preprocess(image.view());
    pre_ms.push_back(ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    outputs = bundle.run_all_tensor(input);
    infer_ms.push_back(ms_since(t0));
  }
  const edgekit::Tensor& output = outputs.front().tensor;
  if (!a.dump_input.empty()) {
    std::ofstream f(a.dump_input, std::ios::binary);
    f.write(reinterpret_cast<const char*>(input.data.data()), static_cast<std::streamsize>(input.data.size() * sizeof(float)));
    if (!f) throw edgekit::RuntimeFailure("cannot write " + a.dump_input);
  }

  nlohmann::json result = describe(bundle);
  result["image"] = {{"path", a.image}, {"height", image.height}, {"width", image.width}};
  result["input_shape"] = input.shape;
  result["latency_ms"] = {{"preprocess", median(pre_ms)}, {"infer", median(infer_ms)}, {"runs", a.repeat}};
  if (a.raw) result["output"] = {{"shape", output.shape}, {"data", output.data}};
  const bool every_output = features || outputs.size() > 1;
  if (every_output) {
    result["outputs"] = nlohmann::json::array();
    for (std::size_t i = 0; i < outputs.size(); ++i)
      result["outputs"].push_back(describe_output(outputs[i], manifest.outputs[i], a.raw));
  }

  const bool classification = manifest.task == "classification";
  if (classification) {
    result["top"] = nlohmann::json::array();
    const auto& names = manifest.labels;  // the bundle's labels, when it lists them
    for (const auto& c : edgekit::top_k(output, a.top.value_or(5))) {
      nlohmann::json entry = {{"index", c.index}, {"probability", c.probability}};
      if (c.index >= 0 && static_cast<std::size_t>(c.index) < names.size()) entry["label"] = names[static_cast<std::size_t>(c.index)];
      result["top"].push_back(entry);
    }
  } else if (!features) {
    edgekit::LabelMap labels = edgekit::argmax_labels(output);
    std::set<int> present(labels.labels.begin(), labels.labels.end());
    result["label_map"] = {{"height", labels.height}, {"width", labels.width}, {"num_classes", labels.num_classes},
                           {"classes_present", std::vector<int>(present.begin(), present.end())}};
    if (a.raw) result["label_map"]["data"] = labels.labels;
    if (!a.out.empty()) {
      write_label_png(a.out, labels);
      result["label_map"]["png"] = a.out;
    }
  }
  if (a.json) {
    std::cout << result.dump() << "\n";
    return 0;
  }
  std::printf("%s: %s (%s %s, built with %s %s)\n", a.image.c_str(), manifest.model_name.c_str(), manifest.target.c_str(),
              manifest.precision.c_str(), manifest.runtime_name.c_str(), manifest.runtime_version.c_str());
  if (classification) {
    std::printf("  rank  class  probability  label\n");
    int rank = 1;
    for (const auto& c : result["top"])
      std::printf("  %4d  %5d  %11.4f  %s\n", rank++, c["index"].get<int>(), c["probability"].get<double>(),
                  c.contains("label") ? c["label"].get<std::string>().c_str() : "");
  } else if (!features) {
    const auto& lm = result["label_map"];
    std::printf("  label map %dx%d, classes present: %s%s\n", lm["height"].get<int>(), lm["width"].get<int>(),
                lm["classes_present"].dump().c_str(), a.out.empty() ? "" : (", written to " + a.out).c_str());
  }
  if (every_output) {  // one line per output, in the manifest's order
    std::size_t name_w = 6, shape_w = 5;
    for (const auto& o : result["outputs"]) {
      name_w = std::max(name_w, o["name"].get<std::string>().size());
      shape_w = std::max(shape_w, shape_text(o["shape"]).size());
    }
    const int nw = static_cast<int>(name_w), sw = static_cast<int>(shape_w);
    std::printf("  %-*s  %-*s  %-9s  %6s  %11s  %11s  %11s\n", nw, "output", sw, "shape", "kind", "stride", "mean", "min", "max");
    for (const auto& o : result["outputs"])
      std::printf("  %-*s  %-*s  %-9s  %6s  %11.4g  %11.4g  %11.4g\n", nw, o["name"].get<std::string>().c_str(), sw,
                  shape_text(o["shape"]).c_str(), o["kind"].is_null() ? "-" : o["kind"].get<std::string>().c_str(),
                  o["stride"].is_null() ? "-" : std::to_string(o["stride"].get<std::int64_t>()).c_str(),
                  o["mean"].get<double>(), o["min"].get<double>(), o["max"].get<double>());
  }
  std::printf("  preprocess %.2f ms, infer %.2f ms (median of %d)\n", median(pre_ms), median(infer_ms), a.repeat);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    if (a.version) return version();
    return a.check_only ? check(a) : run(a);
  } catch (const UsageError& e) {
    std::cerr << "edgekit-run: error: " << e.what() << "\n";
    std::cerr << kUsage;
    return 2;
  } catch (const OptionMisfit& e) {
    std::cerr << "edgekit-run: error: " << e.what() << "\n";
    return 2;
  } catch (const edgekit::BundleError& e) {
    std::cerr << "edgekit-run: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "edgekit-run: error: " << e.what() << "\n";
    return 1;
  }
}
