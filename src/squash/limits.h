// squash/limits.h — what one image may cost to squash. Exceeding a limit is a
// client error (4xx) whose message names the limit; every limit is
// configurable (squash.limits.* in the config).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace wharf::squash {

struct Limits {
  uint64_t max_uncompressed_bytes = 64ull << 30;  // per image, all layers
  uint64_t max_entries = 2'000'000;               // tar entries per image
  uint64_t max_pax_bytes = 1 << 20;               // one PAX extended header
  uint64_t max_path_bytes = 4096;                 // a path or link target
  int zstd_window_log_max = 25;                   // 32 MiB: bounds decoder memory
};

// The layer content is not something we can squash (not a tar, corrupt,
// escapes the root, ...). Maps to a 4xx.
class LayerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An image exceeds one of the Limits. Maps to a 4xx naming the limit.
class LimitError : public LayerError {
 public:
  using LayerError::LayerError;
};

}  // namespace wharf::squash
