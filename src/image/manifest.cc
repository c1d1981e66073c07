#include "image/manifest.h"

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/error.h"

namespace wharf::image {

using core::Error;
using core::ErrorCode;
using nlohmann::json;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "type/subtype; charset=x" -> "type/subtype"
std::string_view bare_type(std::string_view v) {
  auto semi = v.find(';');
  return trim(v.substr(0, semi));
}

[[noreturn]] void invalid(const std::string& msg) { throw Error(ErrorCode::ManifestInvalid, msg); }

Descriptor descriptor(const json& j, const std::string& where) {
  if (!j.is_object()) invalid(where + " must be a descriptor object");
  Descriptor d;
  if (!j.contains("mediaType") || !j["mediaType"].is_string()) invalid(where + ".mediaType must be a string");
  d.media_type = j["mediaType"].get<std::string>();
  if (!j.contains("digest") || !j["digest"].is_string()) invalid(where + ".digest must be a string");
  d.digest = j["digest"].get<std::string>();
  if (!core::Digest::parse(d.digest))
    invalid(where + ".digest \"" + d.digest + "\" is not a valid sha256 or sha512 digest");
  if (!j.contains("size") || !j["size"].is_number_integer() || j["size"].get<int64_t>() < 0)
    invalid(where + ".size must be a non-negative integer");
  d.size = j["size"].get<int64_t>();
  if (j.contains("urls")) {
    if (!j["urls"].is_array()) invalid(where + ".urls must be an array");
    d.has_urls = !j["urls"].empty();
  }
  return d;
}

// Platform values of an index entry, checked at push: only what no real
// client sends is refused (non-string values, values over kMaxPlatformValue
// bytes, control characters); any other string is kept as it is (BuildKit's
// attestation entries say unknown/unknown).
constexpr size_t kMaxPlatformValue = 256;
void check_platform_string(const json& v, const std::string& where) {
  if (!v.is_string()) invalid(where + " must be a string");
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxPlatformValue)
    invalid(where + " is longer than " + std::to_string(kMaxPlatformValue) + " bytes");
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) invalid(where + " contains a control character");
}
void check_platform(const json& m, const std::string& where) {
  if (!m.contains("platform")) return;
  const auto& p = m["platform"];
  if (!p.is_object()) invalid(where + ".platform must be an object");
  for (const char* k : {"architecture", "os", "os.version", "variant"})
    if (p.contains(k)) check_platform_string(p[k], where + ".platform." + k);
  for (const char* k : {"os.features", "features"}) {
    if (!p.contains(k)) continue;
    if (!p[k].is_array()) invalid(where + ".platform." + k + " must be an array of strings");
    size_t i = 0;
    for (const auto& f : p[k]) check_platform_string(f, where + ".platform." + k + "[" + std::to_string(i++) + "]");
  }
}

bool known(std::string_view t) {
  return t == kOciManifest || t == kOciIndex || t == kDockerManifest || t == kDockerList;
}

}  // namespace

ParsedManifest parse_manifest(std::string_view body, std::string_view content_type) {
  std::string_view ct = bare_type(content_type);
  if (ct.starts_with("application/vnd.docker.distribution.manifest.v1"))
    invalid("Docker schema1 manifests are not supported (deprecated since 2017 and unsigned-unsafe); push the "
            "image as Docker schema2 or OCI, e.g. with `skopeo copy --format v2s2` or `--format oci`");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    invalid(std::string("manifest is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) invalid("manifest must be a JSON object");
  if (!j.contains("schemaVersion") || !j["schemaVersion"].is_number_integer())
    invalid("manifest has no integer schemaVersion");
  if (j["schemaVersion"].get<int64_t>() == 1)
    invalid("Docker schema1 manifests are not supported (deprecated since 2017); push the image as Docker "
            "schema2 or OCI, e.g. with `skopeo copy --format v2s2` or `--format oci`");
  if (j["schemaVersion"].get<int64_t>() != 2) invalid("manifest schemaVersion must be 2");

  std::string body_type;
  if (j.contains("mediaType")) {
    if (!j["mediaType"].is_string()) invalid("mediaType must be a string");
    body_type = j["mediaType"].get<std::string>();
  }
  if (!body_type.empty() && !ct.empty() && body_type != ct)
    invalid("Content-Type \"" + std::string(ct) + "\" differs from the manifest's mediaType \"" + body_type + "\"");

  ParsedManifest p;
  p.media_type = !body_type.empty() ? body_type : std::string(ct);
  if (p.media_type.empty()) p.media_type = j.contains("manifests") ? kOciIndex : kOciManifest;
  if (!known(p.media_type))
    invalid("unsupported manifest media type \"" + p.media_type + "\"; accepted: " + std::string(kOciManifest) +
            ", " + std::string(kOciIndex) + ", " + std::string(kDockerManifest) + ", " + std::string(kDockerList));
  p.is_index = p.media_type == kOciIndex || p.media_type == kDockerList;

  if (p.is_index) {
    if (!j.contains("manifests") || !j["manifests"].is_array()) invalid("index has no manifests array");
    size_t i = 0;
    for (const auto& m : j["manifests"]) {
      std::string where = "manifests[" + std::to_string(i++) + "]";
      p.children.push_back(descriptor(m, where));
      check_platform(m, where);
    }
  } else {
    if (!j.contains("config")) invalid("image manifest has no config descriptor");
    p.blobs.push_back(descriptor(j["config"], "config"));
    if (j.contains("layers")) {
      if (!j["layers"].is_array()) invalid("layers must be an array");
      size_t i = 0;
      for (const auto& l : j["layers"]) p.blobs.push_back(descriptor(l, "layers[" + std::to_string(i++) + "]"));
    } else if (p.media_type == kDockerManifest) {
      invalid("Docker schema2 manifest has no layers array");
    }
  }
  if (j.contains("subject")) p.subject = descriptor(j["subject"], "subject");
  if (j.contains("artifactType")) {
    if (!j["artifactType"].is_string()) invalid("artifactType must be a string");
    p.artifact_type = j["artifactType"].get<std::string>();
  } else if (!p.is_index) {
    p.artifact_type = p.blobs.front().media_type;
  }
  if (j.contains("annotations")) {
    if (!j["annotations"].is_object()) invalid("annotations must be an object");
    p.annotations = j["annotations"].dump();
  }
  return p;
}

bool accept_allows(const std::vector<std::string_view>& accept_values, std::string_view stored) {
  if (accept_values.empty()) return true;
  bool any = false;
  for (auto v : accept_values) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      auto item = bare_type(v.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (!item.empty()) {
        any = true;
        if (item == "*/*" || item == stored) return true;
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  return !any;  // only empty Accept values: as if absent
}

}  // namespace wharf::image
