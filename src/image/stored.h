// image/stored.h — reading manifests and image configs the registry has
// stored (validated when pushed, by parse_manifest): what the squash service
// and the management API need from them. Readers are lenient where a
// manifest stored by an older version may lack what a newer push checks: a
// field they cannot read is absent, never an exception, unless said.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/manifest.h"

namespace wharf::image {

// The parts of an image manifest (OCI image manifest or Docker schema2).
struct StoredImage {
  Descriptor config;
  std::vector<Descriptor> layers;
};
// nullopt when `body` is not an image manifest's JSON (an index, not JSON).
std::optional<StoredImage> stored_image(std::string_view body);

// True when `body` is an index / manifest list (a JSON object with "manifests").
bool stored_is_index(std::string_view body);

// What a listing shows of a stored manifest.
struct ManifestSummary {
  std::vector<std::string> platforms;      // an index's children ("os/arch[/variant]", attestations skipped)
  std::optional<uint64_t> size;            // an image manifest's config + layers
  nlohmann::json annotations = nlohmann::json::object();
};
ManifestSummary summarize(std::string_view body);

// True for a layer media type that is a tar stream (plain, gzip, zstd; OCI or Docker).
bool tar_layer_media_type(std::string_view media_type);
// True for the config media type of a runnable image (OCI or Docker).
bool image_config_media_type(std::string_view media_type);

// An image config's Labels (config.Labels), an empty object when it has none
// or `config` is not a JSON object.
nlohmann::json config_labels(std::string_view config);
// True when `config` is a JSON object.
bool config_is_object(std::string_view config);

}  // namespace wharf::image
