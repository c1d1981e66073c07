#include "image/platform.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace wharf::image {

Platform normalize(Platform p) {
  if (p.arch == "aarch64") p.arch = "arm64";
  if (p.arch == "x86_64" || p.arch == "x86-64") p.arch = "amd64";
  if (p.arch == "arm64" && p.variant.empty()) p.variant = "v8";
  if (p.arch == "arm" && p.variant.empty()) p.variant = "v7";
  if (p.arch == "amd64" && p.variant == "v1") p.variant.clear();
  return p;
}

std::optional<Platform> parse_platform(std::string_view s) {
  Platform p;
  auto a = s.find('/');
  if (a == std::string_view::npos) return std::nullopt;
  p.os = s.substr(0, a);
  auto rest = s.substr(a + 1);
  auto b = rest.find('/');
  p.arch = rest.substr(0, b);
  if (b != std::string_view::npos) p.variant = rest.substr(b + 1);
  auto ok = [](const std::string& x) {
    return !x.empty() && x.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
  };
  if (!ok(p.os) || !ok(p.arch) || (!p.variant.empty() && !ok(p.variant))) return std::nullopt;
  return normalize(p);
}

std::optional<Platform> descriptor_platform(const nlohmann::json& m) {
  if (!m.is_object() || !m.contains("platform") || !m["platform"].is_object()) return std::nullopt;
  const auto& pj = m["platform"];
  Platform p;
  for (auto [key, out] : {std::pair{"os", &p.os}, {"architecture", &p.arch}, {"variant", &p.variant}}) {
    if (!pj.contains(key)) continue;
    if (!pj[key].is_string()) return std::nullopt;
    *out = pj[key].get<std::string>();
  }
  return p;
}

IndexChoice choose_platform(const std::string& index_json, const Platform& want) {
  IndexChoice c;
  auto j = nlohmann::json::parse(index_json);
  Platform w = normalize(want);
  auto list = j.value("manifests", nlohmann::json::array());
  for (const auto& m : list.is_array() ? list : nlohmann::json::array()) {
    auto pp = descriptor_platform(m);
    if (!pp || !m.contains("digest") || !m["digest"].is_string()) continue;
    Platform p = *pp;
    if (p.os == "unknown" || p.arch == "unknown") continue;  // attestations
    p = normalize(p);
    c.available.push_back(p.str());
    if (!c.digest && p == w) c.digest = m.value("digest", "");
  }
  std::sort(c.available.begin(), c.available.end());
  c.available.erase(std::unique(c.available.begin(), c.available.end()), c.available.end());
  return c;
}

}  // namespace wharf::image
