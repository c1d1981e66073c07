#include "squash/memory_budget.h"

namespace wharf::squash {

void MemoryBudget::Reservation::release() {
  if (!b_) return;
  {
    std::lock_guard lk(b_->mu_);
    b_->used_ -= n_;
  }
  b_->cv_.notify_all();
  b_ = nullptr;
}

bool MemoryBudget::Reservation::try_grow(uint64_t more) {
  std::lock_guard lk(b_->mu_);
  if (b_->used_ + more > b_->total_) return false;
  b_->used_ += more;
  n_ += more;
  return true;
}

MemoryCharge MemoryBudget::charge_or_give_up(const std::string& what) {
  auto r = std::make_shared<Reservation>(acquire(0, what));
  return [r](uint64_t n) {
    if (!r->try_grow(n)) throw BudgetBusy(n);  // safe from several threads: try_grow takes the budget's lock
  };
}

bool MemoryBudget::try_take(uint64_t bytes) {
  std::lock_guard lk(mu_);
  if (used_ + bytes > total_) return false;
  used_ += bytes;
  return true;
}

void MemoryBudget::give(uint64_t bytes) {
  {
    std::lock_guard lk(mu_);
    used_ -= bytes;
  }
  cv_.notify_all();
}

LimitError MemoryBudget::too_large(uint64_t bytes, const std::string& what) const {
  return LimitError(what + " needs about " + std::to_string((bytes + (1 << 20) - 1) >> 20) +
                    " MiB of memory to squash, more than the whole budget (squash.memory_budget_bytes, " +
                    std::to_string(total_ >> 20) + " MiB)");
}

MemoryBudget::Reservation MemoryBudget::acquire(uint64_t bytes, const std::string& what) {
  if (bytes > total_) throw too_large(bytes, what);
  std::unique_lock lk(mu_);
  uint64_t ticket = next_ticket_++;
  cv_.wait(lk, [&] { return serving_ == ticket && used_ + bytes <= total_; });
  ++serving_;
  used_ += bytes;
  cv_.notify_all();
  return Reservation(this, bytes);
}

uint64_t MemoryBudget::used() const {
  std::lock_guard lk(mu_);
  return used_;
}

}  // namespace wharf::squash
