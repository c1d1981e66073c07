// image/platform.h — platforms ("os/arch[/variant]"): parsing, normalizing
// (arm64 = arm64/v8, arm = arm/v7, amd64 has no variant) and choosing the
// child of an index or manifest list. Attestation entries (unknown/unknown)
// are never chosen.
#pragma once

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
