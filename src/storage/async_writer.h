// storage/async_writer.h — writes buffers on the caller's thread and hashes
// them on a thread of its own, so whoever produces them (a socket read, a
// layer decoder) goes on while the previous buffer is hashed: on two cores a
// stream then moves at the speed of its slower half instead of the sum of
// both. (Writing stays with the caller: a write to the page cache is cheap,
// and a buffer is on disk, readable by followers, as soon as push returns.)
//
// Buffers come from a process-wide pool (at most 8 kept) and go back to it
// once hashed and written, so neither a long stream nor a new request touches
// fresh memory per chunk (costly on the 2-core VM, BENCHMARKS.md). Not
// thread-safe for callers: one
// producer. Errors of the writer thread come back from the next push/finish.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/digest.h"
#include "storage/blob_store.h"

namespace wharf::storage {

class AsyncWriter {
 public:
  static constexpr size_t kChunk = 1 << 20;

  // Where each buffer is written: on the caller's thread (Caller; the buffer
  // is written when push returns) or on the worker with the hashing (Worker;
  // for producers that are CPU-bound themselves, like a layer decoder).
  enum class WriteOn { Caller, Worker };
  // `progress(total)` runs after each buffer is written, on the thread that wrote it.
  AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress = {},
              WriteOn where = WriteOn::Caller);
  ~AsyncWriter();  // drains and joins; errors are dropped (call finish() to see them)
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  // A buffer of kChunk bytes (recycled when possible; contents undefined).
  std::string take();
  // Writes the first `n` bytes of `buf`, then queues them for hashing;
  // blocks while kDepth buffers wait.
  void push(std::string buf, size_t n);
  // Waits until everything pushed is hashed.
  void finish();

 private:
  static constexpr size_t kDepth = 4;
  void run();

  UploadWriter& out_;
  core::Hasher& hash_;
  WriteOn where_;
  std::function<void(uint64_t)> progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, size_t>> queue_;
  bool busy_ = false, closing_ = false;
  uint64_t total_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace wharf::storage
