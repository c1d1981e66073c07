// auth/login_limiter.h — the failed-login limit: after `max` failures within
// failed_login_window_seconds under one key (an "address\naccount" pair, or
// an address alone), the key is blocked for block_seconds.
//
// Owns the failure counts of this process. Thread-safe: every method may be
// called from any thread (state below is protected by mu_).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.h"

namespace wharf::auth {

class LoginLimiter {
 public:
  explicit LoginLimiter(const core::AuthConfig& cfg) : cfg_(cfg) {}

  // Throws core::Error TooManyRequests (with Retry-After) while `key` is blocked.
  void check(const std::string& key);
  // Counts a failure under `key`; `max` failures within the window block it.
  void note_failure(const std::string& key, int max);

 private:
  const core::AuthConfig& cfg_;
  struct Failures {
    std::vector<int64_t> times;  // unix seconds, within the window
    int64_t blocked_until = 0;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Failures> failures_;  // at most ~100 000 keys (older ones forgotten first)
};

}  // namespace wharf::auth
