#include "auth/login_limiter.h"

#include "core/clock.h"
#include "core/error.h"

namespace wharf::auth {

void LoginLimiter::check(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = failures_.find(key);
  if (it == failures_.end()) return;
  int64_t now = core::unix_seconds();
  if (it->second.blocked_until > now) {
    throw core::Error(core::ErrorCode::TooManyRequests, "too many failed logins; try again later")
        .with_header("Retry-After", std::to_string(it->second.blocked_until - now));
  }
}

void LoginLimiter::note_failure(const std::string& key, int max) {
  std::lock_guard lk(mu_);
  int64_t now = core::unix_seconds();
  if (failures_.size() > 100000) {  // bounded memory under a flood: forget what no longer counts, keep blocks
    std::erase_if(failures_, [&](const auto& kv) {
      const Failures& x = kv.second;
      return x.blocked_until <= now && (x.times.empty() || x.times.back() < now - cfg_.failed_login_window_seconds);
    });
    if (failures_.size() > 100000) std::erase_if(failures_, [&](const auto& kv) { return kv.second.blocked_until <= now; });
  }
  auto& f = failures_[key];
  std::erase_if(f.times, [&](int64_t t) { return t < now - cfg_.failed_login_window_seconds; });
  f.times.push_back(now);
  if (static_cast<int>(f.times.size()) >= max) {
    f.blocked_until = now + cfg_.block_seconds;
    f.times.clear();
  }
}

}  // namespace wharf::auth
