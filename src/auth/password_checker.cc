#include "auth/password_checker.h"

#include "auth/crypto.h"
#include "core/clock.h"
#include "core/error.h"

namespace wharf::auth {

bool PasswordChecker::check(const std::string& cache_key, int64_t generation, const std::string& hash,
                            std::string_view secret) {
  if (!hash.empty()) {
    std::lock_guard lk(cache_mu_);
    auto it = ok_.find(cache_key);
    if (it != ok_.end() && it->second.first > core::unix_seconds() && it->second.second == generation) return true;
  }
  {
    std::unique_lock lk(slot_mu_);
    if (waiting_ >= 16)
      throw core::Error(core::ErrorCode::TooManyRequests, "too many sign-ins at once; try again in a second")
          .with_header("Retry-After", "1");
    ++waiting_;
    slot_cv_.wait(lk, [&] { return running_ < 2; });
    --waiting_;
    ++running_;
  }
  struct Release {
    PasswordChecker& p;
    ~Release() {
      {
        std::lock_guard lk(p.slot_mu_);
        --p.running_;
      }
      p.slot_cv_.notify_one();
    }
  } release{*this};
  // Unknown users cost the same argon2id verification as known ones.
  bool ok = verify_password(hash.empty() ? dummy_password_hash() : hash, secret) && !hash.empty();
  if (ok) {
    std::lock_guard lk(cache_mu_);
    if (ok_.size() > 10000) ok_.clear();
    ok_[cache_key] = {core::unix_seconds() + cfg_.password_cache_seconds, generation};
  }
  return ok;
}

}  // namespace wharf::auth
