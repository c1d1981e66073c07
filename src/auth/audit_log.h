// auth/audit_log.h — the audit log's write queue: events are queued by the
// request threads and committed together by one writer thread every 100 ms
// (or at 512 queued, or on flush): one transaction instead of one fsync per
// event. A crash loses at most that window.
//
// Owns the queue and the writer thread. Thread-safe: append() and flush()
// from any thread (state below is protected by mu_); the destructor writes
// what is still queued.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "meta/account_store.h"

namespace wharf::auth {

class AuditLog {
 public:
  explicit AuditLog(meta::AccountStore& store);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void append(meta::AuditEvent e);
  // Returns once every event appended before the call is committed.
  void flush();

 private:
  void run();
  meta::AccountStore& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<meta::AuditEvent> queue_;
  uint64_t queued_ = 0, written_ = 0;
  bool stop_ = false, flush_ = false;
  std::thread writer_;  // last: starts once the members it uses exist
};

}  // namespace wharf::auth
