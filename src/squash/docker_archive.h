// squash/docker_archive.h — the `docker save` archive around a squashed
// layer: `<dir>/layer.tar`, then the image config `<sha256>.json`,
// `manifest.json` and `repositories` (config and manifest.json follow the
// layer: docker 20.10, podman 4.3 and skopeo accept that order, and it lets
// the layer stream before its diff_id is known). Every byte is deterministic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wharf::squash {

// The squashed image's config: everything of `original` kept, rootfs set to
// the one layer `diff_id`, every history entry marked empty_layer and one
// entry naming `source_manifest` appended. `diff_id` may be a placeholder of
// the same length (the output length does not depend on it).
std::string squashed_config(const std::string& original, const std::string& diff_id,
                            const std::string& source_manifest);

struct ArchiveLayout {
  std::string layer_dir;              // directory of layer.tar in the archive
  uint64_t layer_size = 0;
  std::optional<std::string> repo_tag;  // "host/name:tag" or none (by digest)
};

// Bytes before the layer: the directory entry and layer.tar's header.
std::string archive_head(const ArchiveLayout& a);
// Bytes after the layer: its padding, the config, manifest.json, repositories
// and the end-of-archive blocks.
std::string archive_tail(const ArchiveLayout& a, const std::string& config);
// Total archive size.
uint64_t archive_size(const ArchiveLayout& a, const std::string& config);

// True when "host/name:tag" is a valid image reference (host[:port] then the
// repository grammar); RepoTags is left out otherwise.
bool valid_repo_tag(const std::string& host, const std::string& name, const std::string& tag);

}  // namespace wharf::squash
