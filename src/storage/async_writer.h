// storage/async_writer.h — hashes and writes buffers on a thread of its own,
// so whoever produces them (a socket read, a layer decoder) goes on while the
// previous buffer is hashed and written: on two cores a stream then moves at
// the speed of its slower half instead of the sum of both.
//
// Buffers are recycled (take() hands out one that was written), so a long
// stream costs no allocation per chunk. Not thread-safe for callers: one
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

  // `progress(total)` runs on the writer thread after each buffer is written.
  AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress = {});
  ~AsyncWriter();  // drains and joins; errors are dropped (call finish() to see them)
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  // An empty buffer with kChunk capacity (recycled when possible).
  std::string take();
  // Queues `buf` for hashing and writing; blocks while kDepth buffers wait.
  void push(std::string buf);
  // Waits until everything pushed is hashed and written.
  void finish();

 private:
  static constexpr size_t kDepth = 4;
  void run();

  UploadWriter& out_;
  core::Hasher& hash_;
  std::function<void(uint64_t)> progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::vector<std::string> free_;
  bool busy_ = false, closing_ = false;
  uint64_t total_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace wharf::storage
