// squash/memory_budget.h — the bytes of memory squash builds, size plans and
// indexes may hold at once, shared out in the order callers came.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "squash/build.h"

namespace wharf::squash {

// An index pass found the budget taken by others while its indexes grew:
// it gives back what it held and waits in line for `bytes` (what it had
// reached).
class BudgetBusy : public std::runtime_error {
 public:
  explicit BudgetBusy(uint64_t b) : std::runtime_error("squash memory budget taken"), bytes(b) {}
  uint64_t bytes;
};

// A budget of bytes shared by builds: acquire() waits until `bytes` fit.
// Thread-safe.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t total) : total_(total) {}
  class Reservation {
   public:
    Reservation() = default;
    Reservation(MemoryBudget* b, uint64_t n) : b_(b), n_(n) {}
    Reservation(Reservation&& o) noexcept : b_(std::exchange(o.b_, nullptr)), n_(o.n_) {}
    Reservation& operator=(Reservation&& o) noexcept {
      release();
      b_ = std::exchange(o.b_, nullptr);
      n_ = o.n_;
      return *this;
    }
    ~Reservation() { release(); }
    void release();
    // Takes `more` bytes at once if they are free, else false: it never
    // waits, so a holder never waits while holding (growers cannot deadlock).
    // Thread-safe (under the budget's lock).
    bool try_grow(uint64_t more);

   private:
    MemoryBudget* b_ = nullptr;
    uint64_t n_ = 0;
  };
  // Waits until `bytes` are free, in the order callers came. Throws
  // LimitError when `bytes` exceed the whole budget (`what` says for what).
  Reservation acquire(uint64_t bytes, const std::string& what);
  // A charge (build.h) holding its own reservation, taken in line (waiting
  // for those ahead), that then grows without waiting: when the budget is
  // taken it throws BudgetBusy, so its holder gives up instead of waiting
  // while holding. For indexes nobody waits for (at push, in the background).
  MemoryCharge charge_or_give_up(const std::string& what);
  // Takes or gives back bytes without a reservation; try_take never waits.
  bool try_take(uint64_t bytes);
  void give(uint64_t bytes);
  // The error for `bytes` over the whole budget.
  LimitError too_large(uint64_t bytes, const std::string& what) const;
  uint64_t total() const { return total_; }
  uint64_t used() const;

 private:
  const uint64_t total_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;
  uint64_t next_ticket_ = 0, serving_ = 0;
};

}  // namespace wharf::squash
