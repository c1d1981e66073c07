// image/manifest.h — parsing and validation of pushed manifests (OCI image
// manifest and index, Docker schema2 manifest and manifest list; Docker
// schema1 is refused), and manifest content negotiation.
//
// Knows nothing of storage or HTTP: the registry asks the metadata store
// whether the references returned here exist.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::image {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  bool has_urls = false;  // foreign layer: may be absent from the registry
};

struct ParsedManifest {
  std::string media_type;             // the effective media type
  bool is_index = false;
  std::vector<Descriptor> blobs;      // config and layers (image manifests)
  std::vector<Descriptor> children;   // manifests (indexes)
  std::optional<Descriptor> subject;
  std::string artifact_type;          // artifactType, else the config media type
  std::string annotations;            // JSON text of "annotations", or empty
};

// Parses `body` pushed with `content_type` (may be empty). Throws core::Error
// MANIFEST_INVALID with a message a person can act on when the body is not a
// manifest we accept, and when Content-Type and the body's mediaType differ.
ParsedManifest parse_manifest(std::string_view body, std::string_view content_type);

// True when the Accept header values (each possibly comma-joined, with
// parameters) admit a manifest of type `stored`: no Accept at all, `*/*`, or
// the stored type listed.
bool accept_allows(const std::vector<std::string_view>& accept_values, std::string_view stored);

}  // namespace wharf::image
