// Reads manifest.json with nlohmann::json and checks the fields this runtime reads against the
// constraints of edgekit/manifest.schema.json. A full JSON Schema validator is not used: none is
// packaged for the platforms this runs on (Debian, Jetson, ROS 2), and the runtime needs typed fields
// anyway. tests/test_manifest_schema.py holds this reader, the Python reader and the schema file to
// the same verdicts on a table of broken manifests.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <regex>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "edgekit/errors.hpp"
#include "edgekit/manifest.hpp"

#ifndef EDGEKIT_SCHEMA_VERSION
#error "EDGEKIT_SCHEMA_VERSION is set by CMake from edgekit/manifest.schema.json"
#endif

namespace edgekit {

const char* schema_version() { return EDGEKIT_SCHEMA_VERSION; }

namespace {

using json = nlohmann::json;

// A field that breaks the schema: where ("preprocess.mean", "files[0].sha256") and what.
struct SchemaViolation {
  std::string where, what;
};

std::string at(const std::string& parent, const std::string& key) { return parent.empty() ? key : parent + "." + key; }
std::string at(const std::string& parent, std::size_t index) { return parent + "[" + std::to_string(index) + "]"; }

const json& require(const json& obj, const std::string& where, const char* key) {
  if (!obj.contains(key)) throw SchemaViolation{where.empty() ? "top level" : where, std::string("'") + key + "' is a required property"};
  return obj.at(key);
}

const json& object(const json& v, const std::string& where) {
  if (!v.is_object()) throw SchemaViolation{where, v.dump() + " is not of type 'object'"};
  return v;
}

const json& array(const json& v, const std::string& where, std::size_t min_items, std::size_t max_items = SIZE_MAX) {
  if (!v.is_array()) throw SchemaViolation{where, v.dump() + " is not of type 'array'"};
  if (v.size() < min_items) throw SchemaViolation{where, v.dump() + " is too short (needs " + std::to_string(min_items) + " items)"};
  if (v.size() > max_items) throw SchemaViolation{where, v.dump() + " is too long (at most " + std::to_string(max_items) + " items)"};
  return v;
}

std::string string(const json& v, const std::string& where, std::size_t min_length = 0) {
  if (!v.is_string()) throw SchemaViolation{where, v.dump() + " is not of type 'string'"};
  std::string s = v.get<std::string>();
  if (s.size() < min_length) throw SchemaViolation{where, "'' should be non-empty"};
  return s;
}

std::string one_of(const json& v, const std::string& where, std::initializer_list<const char*> allowed) {
  if (v.is_string()) {
    for (const char* a : allowed)
      if (v.get<std::string>() == a) return a;
  }
  std::string list;
  for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + "'" + a + "'";
  throw SchemaViolation{where, v.dump() + " is not one of [" + list + "]"};
}

// JSON Schema numbers exclude booleans; integers include 2.0.
double number(const json& v, const std::string& where) {
  if (!v.is_number()) throw SchemaViolation{where, v.dump() + " is not of type 'number'"};
  return v.get<double>();
}

bool is_integer(const json& v) {
  return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
}

std::int64_t integer(const json& v, const std::string& where, std::int64_t minimum) {
  if (!is_integer(v)) throw SchemaViolation{where, v.dump() + " is not of type 'integer'"};
  auto i = static_cast<std::int64_t>(v.get<double>());
  if (i < minimum) throw SchemaViolation{where, v.dump() + " is less than the minimum of " + std::to_string(minimum)};
  return i;
}

std::array<float, 3> rgb(const json& v, const std::string& where, bool positive) {
  array(v, where, 3, 3);
  std::array<float, 3> out{};
  for (std::size_t i = 0; i < 3; ++i) {
    double x = number(v[i], at(where, i));
    if (positive && !(x > 0)) throw SchemaViolation{at(where, i), v[i].dump() + " is less than or equal to the minimum of 0"};
    out[i] = static_cast<float>(x);  // numpy: np.asarray(mean, np.float32)
  }
  return out;
}

TensorSpec tensor(const json& v, const std::string& where) {
  object(v, where);
  TensorSpec t;
  t.name = string(require(v, where, "name"), at(where, "name"));
  const json& shape = array(require(v, where, "shape"), at(where, "shape"), 0);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i].is_string()) {
      t.shape.push_back(-1);  // a named dynamic dimension
    } else if (is_integer(shape[i])) {
      t.shape.push_back(integer(shape[i], at(at(where, "shape"), i), 1));
    } else {
      throw SchemaViolation{at(at(where, "shape"), i), shape[i].dump() + " is not valid under any of the given schemas"};
    }
  }
  t.dtype = string(require(v, where, "dtype"), at(where, "dtype"));
  if (v.contains("layout")) t.layout = string(v["layout"], at(where, "layout"));
  // What an output holds (features bundles say it); absent in older manifests and where it does not apply.
  if (v.contains("kind")) t.kind = one_of(v["kind"], at(where, "kind"), {"logits", "labels", "map", "tokens", "embedding"});
  if (v.contains("stride")) t.stride = integer(v["stride"], at(where, "stride"), 1);
  if (v.contains("channels")) t.channels = integer(v["channels"], at(where, "channels"), 1);
  return t;
}

std::vector<TensorSpec> tensors(const json& v, const std::string& where) {
  array(v, where, 1);
  std::vector<TensorSpec> out;
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(tensor(v[i], at(where, i)));
  return out;
}

// Relative, '/'-separated, no '..' segment, no backslash: a file entry never names a path outside the bundle.
bool safe_relative_path(const std::string& p) {
  static const std::regex pattern(R"(^(?!/)(?!.*(^|/)\.\.(/|$))[^\\]+$)", std::regex::ECMAScript);
  return std::regex_match(p, pattern);
}

std::vector<FileEntry> files(const json& v, const std::string& where) {
  array(v, where, 1);
  static const std::regex hex64("^[0-9a-f]{64}$");
  std::vector<FileEntry> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string w = at(where, i);
    object(v[i], w);
    FileEntry f;
    f.path = string(require(v[i], w, "path"), at(w, "path"));
    if (!safe_relative_path(f.path))
      throw SchemaViolation{at(w, "path"), "'" + f.path + "' is not a relative path inside the bundle"};
    f.sha256 = string(require(v[i], w, "sha256"), at(w, "sha256"));
    if (!std::regex_match(f.sha256, hex64))
      throw SchemaViolation{at(w, "sha256"), "'" + f.sha256 + "' is not 64 lower-case hex digits"};
    if (v[i].contains("bytes")) f.bytes = integer(v[i]["bytes"], at(w, "bytes"), 0);
    out.push_back(f);
  }
  return out;
}

Preprocess preprocess(const json& v, const std::string& where) {
  object(v, where);
  Preprocess p;
  const json& size = array(require(v, where, "size"), at(where, "size"), 2, 2);
  p.height = static_cast<int>(integer(size[0], at(at(where, "size"), 0), 1));
  p.width = static_cast<int>(integer(size[1], at(at(where, "size"), 1), 1));
  p.mean = rgb(require(v, where, "mean"), at(where, "mean"), false);
  p.std = rgb(require(v, where, "std"), at(where, "std"), true);
  p.bgr = one_of(require(v, where, "channel_order"), at(where, "channel_order"), {"RGB", "BGR"}) == std::string("BGR");
  p.layout = one_of(require(v, where, "layout"), at(where, "layout"), {"NCHW", "NHWC"}) == std::string("NHWC") ? Layout::NHWC : Layout::NCHW;
  const std::string resize = one_of(require(v, where, "resize"), at(where, "resize"), {"bilinear", "bicubic", "nearest"});
  p.resize = resize == "bilinear" ? Resize::Bilinear : resize == "bicubic" ? Resize::Bicubic : Resize::Nearest;
  double scale = number(require(v, where, "scale"), at(where, "scale"));
  if (!(scale > 0)) throw SchemaViolation{at(where, "scale"), std::to_string(scale) + " is less than or equal to the minimum of 0"};
  p.scale = static_cast<float>(scale);  // numpy multiplies a float32 array by the Python float as float32
  return p;
}

std::map<std::string, std::string> scalar_options(const json& v, const std::string& where) {
  object(v, where);
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
    else if (it->is_number() || it->is_boolean()) out[it.key()] = it->dump();
  }
  return out;
}

// The options whose value is a list of strings (an ExecuTorch program's output names, in its order).
std::map<std::string, std::vector<std::string>> list_options(const json& v) {
  std::map<std::string, std::vector<std::string>> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const json& e) { return e.is_string(); })) continue;
    out[it.key()] = it->get<std::vector<std::string>>();
  }
  return out;
}

std::vector<std::int64_t> nchw(const json& v, const std::string& where) {
  const json& a = array(v, where, 4, 4);
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < 4; ++i) out.push_back(integer(a[i], at(where, i), 1));
  return out;
}

Envelope envelope(const json& v, const std::string& where) {
  object(v, where);
  Envelope e;
  e.present = true;
  e.min = nchw(require(v, where, "min"), at(where, "min"));
  e.opt = nchw(require(v, where, "opt"), at(where, "opt"));
  e.max = nchw(require(v, where, "max"), at(where, "max"));
  if (v.contains("step")) e.step = integer(v["step"], at(where, "step"), 1);
  return e;
}

Manifest from_json(const json& m) {
  object(m, "top level");
  Manifest out;
  out.schema_version = string(require(m, "", "schema_version"), "schema_version");
  static const std::regex version_pattern(R"(^1\.[0-9]+$)");
  if (!std::regex_match(out.schema_version, version_pattern))
    throw SchemaViolation{"schema_version", "'" + out.schema_version + "' does not match '^1\\.[0-9]+$'"};
  out.edgekit_version = string(require(m, "", "edgekit_version"), "edgekit_version", 1);
  out.target = one_of(require(m, "", "target"), "target", {"onnx", "openvino", "trt", "coreml", "executorch", "litert"});
  out.precision = one_of(require(m, "", "precision"), "precision", {"fp32", "fp16", "bf16", "int8"});
  const json& model = object(require(m, "", "model"), "model");
  out.task = one_of(require(model, "model", "task"), "model.task", {"classification", "segmentation", "features"});
  if (model.contains("name") && model["name"].is_string()) out.model_name = model["name"].get<std::string>();
  if (model.contains("labels")) {  // a label set's name, one label per class, or null
    const json& labels = model["labels"];
    if (labels.is_array()) {
      for (std::size_t i = 0; i < labels.size(); ++i) out.labels.push_back(string(labels[i], at("model.labels", i)));
    } else if (!labels.is_string() && !labels.is_null()) {
      throw SchemaViolation{"model.labels", labels.dump() + " is not of type 'string', 'array', 'null'"};
    }
  }
  const json& runtime = object(require(m, "", "runtime"), "runtime");
  out.runtime_name = string(require(runtime, "runtime", "name"), "runtime.name", 1);
  out.runtime_version = string(require(runtime, "runtime", "version"), "runtime.version", 1);
  out.runtime_facts = scalar_options(runtime, "runtime");
  if (m.contains("runtime_options")) {
    out.runtime_options = scalar_options(m["runtime_options"], "runtime_options");
    out.runtime_option_lists = list_options(m["runtime_options"]);
  }
  out.inputs = tensors(require(m, "", "inputs"), "inputs");
  out.outputs = tensors(require(m, "", "outputs"), "outputs");
  out.preprocess = preprocess(require(m, "", "preprocess"), "preprocess");
  if (m.contains("shapes")) out.shapes = envelope(m["shapes"], "shapes");
  out.files = files(require(m, "", "files"), "files");
  return out;
}

int major_of(const std::string& version) {
  std::string major = version.substr(0, version.find('.'));
  if (major.empty() || major.size() > 6) return -1;
  for (char c : major)
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
  return std::stoi(major);
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& origin) {
  json m;
  try {
    m = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string msg = e.what();
    msg = msg.substr(msg.find("] ") == std::string::npos ? 0 : msg.find("] ") + 2);  // drop "[json.exception...]"
    throw BundleError(origin + " is not valid JSON (" + msg + "); the bundle is damaged");
  }
  // The version comes first: a newer major version may have moved any other field.
  const json version = m.is_object() && m.contains("schema_version") ? m["schema_version"] : json();
  const std::string v = version.is_string() ? version.get<std::string>() : version.is_null() ? "" : version.dump();
  const int major = major_of(v);
  if (major < 0)
    throw BundleError(origin + " has no valid schema_version; the bundle is damaged or not an edgekit bundle");
  if (major > major_of(EDGEKIT_SCHEMA_VERSION))
    throw BundleError("bundle manifest schema " + v + " is newer than this edgekit runtime reads (" +
                      EDGEKIT_SCHEMA_VERSION + "); upgrade the edgekit C++ runtime");
  try {
    return from_json(m);
  } catch (const SchemaViolation& e) {
    throw BundleError(origin + " does not match the manifest schema " + EDGEKIT_SCHEMA_VERSION + " at " + e.where +
                      ": " + e.what + "; the bundle is damaged or was edited");
  }
}

Manifest read_manifest(const std::filesystem::path& bundle_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(bundle_dir)) throw BundleError(bundle_dir.string() + " is not a bundle directory");
  const fs::path path = bundle_dir / "manifest.json";
  if (!fs::is_regular_file(path))
    throw BundleError(bundle_dir.string() + " has no manifest.json; is it an edgekit bundle?");
  std::ifstream f(path, std::ios::binary);
  std::stringstream text;
  text << f.rdbuf();
  if (!f) throw BundleError("cannot read " + path.string());
  return parse_manifest(text.str(), path.string());
}

}  // namespace edgekit
