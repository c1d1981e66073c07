// squash/limits.h — what one image may cost to squash. Exceeding a limit is a
// client error (4xx) whose message names the limit; every limit is
// configurable (squash.limits.* in the config).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/config.h"

namespace wharf::squash {

// The configuration's squash.limits, taken as they are.
using Limits = core::SquashLimitsConfig;

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
