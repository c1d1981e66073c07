// squash/offline.h — squashing an image on disk, with no registry: an OCI
// image layout ("oci:DIR[:TAG]") or a `docker save` archive
// ("docker-archive:FILE"), written as a `docker save` archive. Same engine,
// same bytes as a squashed download of the same manifest (RepoTags aside).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "squash/limits.h"

namespace wharf::squash {

struct OfflineOptions {
  std::string from;      // oci:DIR[:TAG] or docker-archive:FILE
  std::string platform;  // for indexes; "" = linux/amd64
  std::string repo_tag;  // RepoTags entry ("name:tag"), or none
  Limits limits;
};

// Writes the archive to `fd`. `progress(done, total)` is called as bytes go
// out. Throws std::runtime_error / LayerError / LimitError with a message
// naming the problem.
void squash_offline(const OfflineOptions& o, int fd, const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace wharf::squash
