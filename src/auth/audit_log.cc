#include "auth/audit_log.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace wharf::auth {

AuditLog::AuditLog(meta::AccountStore& store) : store_(store), writer_([this] { run(); }) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void AuditLog::append(meta::AuditEvent e) {
  std::lock_guard lk(mu_);
  queue_.push_back(std::move(e));
  ++queued_;
}

void AuditLog::flush() {
  std::unique_lock lk(mu_);
  uint64_t want = queued_;
  flush_ = true;
  cv_.notify_all();
  cv_.wait(lk, [&] { return written_ >= want; });
}

void AuditLog::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return stop_ || flush_ || queue_.size() >= 512; });
    flush_ = false;
    if (!queue_.empty()) {
      std::vector<meta::AuditEvent> batch;
      batch.swap(queue_);
      uint64_t upto = queued_;
      lk.unlock();
      try {
        store_.append_audit(batch);
      } catch (const std::exception& ex) {
        spdlog::error("audit log write of {} events failed: {}", batch.size(), ex.what());
      }
      lk.lock();
      written_ = upto;
      cv_.notify_all();
    }
    if (stop_ && queue_.empty()) return;
  }
}

}  // namespace wharf::auth
