#include "auth/login_limiter.h"

#include "core/clock.h"
#include "core/error.h"

namespace wharf::auth {

void LoginLimiter::check(const std::vector<std::string>& keys) {
  int64_t now = core::unix_seconds();
  int64_t until = accounts_.login_blocked_until(keys, now);
  if (until > now)
    throw core::Error(core::ErrorCode::TooManyRequests, "too many failed logins; try again later")
        .with_header("Retry-After", std::to_string(until - now));
}

void LoginLimiter::note_failure(const std::string& key, int max) {
  int64_t now = core::unix_seconds();
  int n = accounts_.note_login_failure(key, now, now - cfg_.failed_login_window_seconds);
  if (n >= max) accounts_.block_login(key, now + cfg_.block_seconds);
}

}  // namespace wharf::auth
