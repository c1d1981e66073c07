// image/platform.h — platforms ("os/arch[/variant]"): parsing, normalizing
// (arm64 = arm64/v8, arm = arm/v7, amd64 has no variant) and choosing the
// child of an index or manifest list. Attestation entries (unknown/unknown)
// are never chosen.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::image {

struct Platform {
  std::string os, arch, variant;
  std::string str() const { return os + "/" + arch + (variant.empty() ? "" : "/" + variant); }
  bool operator==(const Platform&) const = default;
};

// The platform of an index entry (its descriptor's "platform" object) as
// pushed, not normalized; nullopt when it has none or a value is not a string
// (manifests stored before pushes were validated).
std::optional<Platform> descriptor_platform(const nlohmann::json& descriptor);

// Parses and normalizes "os/arch[/variant]"; nullopt when malformed.
std::optional<Platform> parse_platform(std::string_view s);
Platform normalize(Platform p);

struct IndexChoice {
  std::optional<std::string> digest;      // the chosen child
  std::vector<std::string> available;     // normalized platforms the index has
};
// Picks the child manifest of `index_json` for `want`.
IndexChoice choose_platform(const std::string& index_json, const Platform& want);

}  // namespace wharf::image
