// auth/login_limiter.h — the failed-login limit: after `max` failures within
// failed_login_window_seconds under one key (an "address\naccount" pair, or
// an address alone), the key is blocked for block_seconds.
//
// The counts live in the account store (AccountStore::note_login_failure and
// friends), so every process sharing it counts the same failures: a guesser
// gains nothing by spreading guesses over replicas. Callers pass keys that
// are keyed hashes (a name as typed may be a secret pasted into the wrong
// field: it is never stored as typed).
//
// Holds no state of its own. Thread-safe (the store is).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "meta/account_store.h"

namespace wharf::auth {

class LoginLimiter {
 public:
  LoginLimiter(const core::AuthConfig& cfg, meta::AccountStore& accounts) : cfg_(cfg), accounts_(accounts) {}

  // Throws core::Error TooManyRequests (with Retry-After) while any of `keys` is blocked.
  void check(const std::vector<std::string>& keys);
  // Counts a failure under `key`; `max` failures within the window block it
  // (and its count starts again).
  void note_failure(const std::string& key, int max);

 private:
  const core::AuthConfig& cfg_;
  meta::AccountStore& accounts_;
};

}  // namespace wharf::auth
