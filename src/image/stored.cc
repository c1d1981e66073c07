#include "image/stored.h"

#include "image/platform.h"

namespace wharf::image {

using nlohmann::json;

namespace {

json parse_object(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  return j.is_object() ? j : json();
}

Descriptor read_descriptor(const json& d) {
  Descriptor out;
  if (!d.is_object()) return out;
  if (auto it = d.find("mediaType"); it != d.end() && it->is_string()) out.media_type = *it;
  if (auto it = d.find("digest"); it != d.end() && it->is_string()) out.digest = *it;
  if (auto it = d.find("size"); it != d.end() && it->is_number_integer()) out.size = it->get<int64_t>();
  out.has_urls = d.contains("urls");
  return out;
}

}  // namespace

std::optional<StoredImage> stored_image(std::string_view body) {
  json j = parse_object(body);
  if (!j.is_object() || j.contains("manifests") || !j.contains("config")) return std::nullopt;
  StoredImage img;
  img.config = read_descriptor(j["config"]);
  if (auto it = j.find("layers"); it != j.end() && it->is_array())
    for (const auto& l : *it) img.layers.push_back(read_descriptor(l));
  return img;
}

bool stored_is_index(std::string_view body) {
  json j = parse_object(body);
  return j.is_object() && j.contains("manifests") && j["manifests"].is_array();
}

ManifestSummary summarize(std::string_view body) {
  ManifestSummary s;
  json j = parse_object(body);
  if (!j.is_object()) return s;
  if (auto it = j.find("manifests"); it != j.end() && it->is_array()) {
    for (const auto& d : *it) {
      auto p = descriptor_platform(d);
      if (!p || p->os == "unknown" || p->os.empty()) continue;
      s.platforms.push_back(p->str());
    }
  } else {
    uint64_t total = 0;
    if (j.contains("config") && j["config"].is_object()) total += j["config"].value("size", uint64_t{0});
    for (auto& l : j.value("layers", json::array()))
      if (l.is_object()) total += l.value("size", uint64_t{0});
    s.size = total;
  }
  if (j.contains("annotations") && j["annotations"].is_object()) s.annotations = j["annotations"];
  return s;
}

bool tar_layer_media_type(std::string_view t) {
  return t.find(".tar") != std::string_view::npos || t.find("rootfs.diff.tar") != std::string_view::npos ||
         t == "application/vnd.oci.image.layer.v1.tar";
}

bool image_config_media_type(std::string_view t) {
  return t == "application/vnd.oci.image.config.v1+json" || t == "application/vnd.docker.container.image.v1+json";
}

json config_labels(std::string_view config) {
  json cfg = parse_object(config);
  if (cfg.is_object() && cfg.contains("config") && cfg["config"].is_object() && cfg["config"].contains("Labels") &&
      cfg["config"]["Labels"].is_object())
    return cfg["config"]["Labels"];
  return json::object();
}

bool config_is_object(std::string_view config) { return parse_object(config).is_object(); }

}  // namespace wharf::image
