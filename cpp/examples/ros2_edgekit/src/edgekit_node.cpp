// edgekit_node: subscribes to camera images, runs an edgekit bundle on each, publishes the result.
//
//   ros2 run edgekit_ros2 edgekit_node --ros-args -p bundle:=/path/to/bundle -r image:=/camera/image_raw
//
// Classification bundles publish vision_msgs/Classification on ~/classification (top_k classes, class_id
// is the class index as text, score the softmax probability). Segmentation bundles publish the label map
// on ~/labels (mono8, or mono16 past 255 classes) at the model's output resolution, with the image's
// header. Features bundles are refused (this node has no message for feature maps). The bundle is
// checked (schema, sha256 of every file, runtime version) when the node starts: a mismatch stops the node
// with the runtime's one-line reason.
#include <memory>
#include <string>
#include <vector>

#include <rclcpp/rclcpp.hpp>
#include <sensor_msgs/msg/image.hpp>
#include <vision_msgs/msg/classification.hpp>

#include "edgekit/runtime.hpp"

namespace {

// A view of an rgb8 image, or an RGB copy of bgr8 / rgba8 / bgra8 (edgekit preprocesses 8-bit RGB).
struct RgbFrame {
  std::vector<std::uint8_t> copy;
  edgekit::ImageView view;
};

bool to_rgb(const sensor_msgs::msg::Image& msg, RgbFrame& frame) {
  const int h = static_cast<int>(msg.height), w = static_cast<int>(msg.width);
  if (msg.encoding == "rgb8") {  // no copy: the library reads rows `step` bytes apart
    frame.view = {msg.data.data(), h, w, msg.step};
    return true;
  }
  const bool bgr = msg.encoding == "bgr8" || msg.encoding == "bgra8";
  const int channels = msg.encoding == "bgr8" ? 3 : msg.encoding == "rgba8" || msg.encoding == "bgra8" ? 4 : 0;
  if (channels == 0) return false;
  const int r = bgr ? 2 : 0, g = 1, b = bgr ? 0 : 2;
  frame.copy.resize(static_cast<std::size_t>(h) * w * 3);
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* row = msg.data.data() + static_cast<std::size_t>(y) * msg.step;
    std::uint8_t* out = frame.copy.data() + static_cast<std::size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x, row += channels, out += 3) {
      out[0] = row[r];
      out[1] = row[g];
      out[2] = row[b];
    }
  }
  frame.view = {frame.copy.data(), h, w, 0};
  return true;
}

class EdgekitNode : public rclcpp::Node {
 public:
  EdgekitNode() : Node("edgekit") {
    const std::string path = declare_parameter<std::string>("bundle", "");
    top_k_ = static_cast<int>(declare_parameter<int64_t>("top_k", 5));
    edgekit::Options options;
    options.backend.threads = static_cast<int>(declare_parameter<int64_t>("threads", 0));
    options.backend.device = declare_parameter<std::string>("device", "");
    if (path.empty()) throw std::runtime_error("set the bundle parameter: --ros-args -p bundle:=/path/to/bundle");
    bundle_ = std::make_unique<edgekit::Bundle>(edgekit::Bundle::load(path, options));
    const edgekit::Manifest& m = bundle_->manifest();
    if (m.task == "features")  // feature maps have no message type of their own: a head turns them into one
      throw std::runtime_error("bundle " + path + " is a features model; this node publishes classes or label maps: "
                               "run a head on Bundle::run_all() in your own node (docs/cpp-features.md)");
    if (m.task == "classification")
      classes_pub_ = create_publisher<vision_msgs::msg::Classification>("~/classification", 10);
    else
      labels_pub_ = create_publisher<sensor_msgs::msg::Image>("~/labels", 10);
    // keep only the newest frame: inference slower than the camera drops frames instead of queueing them
    sub_ = create_subscription<sensor_msgs::msg::Image>(
        "image", rclcpp::SensorDataQoS().keep_last(1),
        [this](sensor_msgs::msg::Image::ConstSharedPtr msg) { on_image(*msg); });
    RCLCPP_INFO(get_logger(), "bundle %s: %s %s on %s %s (%s)", path.c_str(), m.model_name.c_str(), m.precision.c_str(),
                m.runtime_name.c_str(), m.runtime_version.c_str(), m.task.c_str());
  }

 private:
  void on_image(const sensor_msgs::msg::Image& msg) {
    RgbFrame frame;
    if (!to_rgb(msg, frame)) {
      RCLCPP_ERROR_ONCE(get_logger(), "unsupported image encoding %s: use rgb8, bgr8, rgba8 or bgra8", msg.encoding.c_str());
      return;
    }
    try {
      if (classes_pub_) {
        vision_msgs::msg::Classification out;
        out.header = msg.header;
        for (const auto& c : bundle_->classify(frame.view, top_k_)) {
          vision_msgs::msg::ObjectHypothesis h;
          h.class_id = std::to_string(c.index);
          h.score = c.probability;
          out.results.push_back(h);
        }
        classes_pub_->publish(out);
      } else {
        const edgekit::LabelMap labels = bundle_->segment(frame.view);
        sensor_msgs::msg::Image out;
        out.header = msg.header;
        out.height = static_cast<uint32_t>(labels.height);
        out.width = static_cast<uint32_t>(labels.width);
        const bool wide = labels.num_classes > 256;
        out.encoding = wide ? "mono16" : "mono8";
        out.step = out.width * (wide ? 2 : 1);
        out.data.resize(static_cast<std::size_t>(out.step) * out.height);
        for (std::size_t i = 0; i < labels.labels.size(); ++i) {
          if (wide) reinterpret_cast<std::uint16_t*>(out.data.data())[i] = labels.labels[i];
          else out.data[i] = static_cast<std::uint8_t>(labels.labels[i]);
        }
        labels_pub_->publish(out);
      }
    } catch (const std::exception& e) {
      RCLCPP_ERROR(get_logger(), "%s", e.what());
    }
  }

  std::unique_ptr<edgekit::Bundle> bundle_;
  int top_k_ = 5;
  rclcpp::Subscription<sensor_msgs::msg::Image>::SharedPtr sub_;
  rclcpp::Publisher<vision_msgs::msg::Classification>::SharedPtr classes_pub_;
  rclcpp::Publisher<sensor_msgs::msg::Image>::SharedPtr labels_pub_;
};

}  // namespace

int main(int argc, char** argv) {
  rclcpp::init(argc, argv);
  int status = 0;
  try {
    rclcpp::spin(std::make_shared<EdgekitNode>());
  } catch (const std::exception& e) {
    RCLCPP_FATAL(rclcpp::get_logger("edgekit"), "%s", e.what());
    status = 2;
  }
  rclcpp::shutdown();
  return status;
}
