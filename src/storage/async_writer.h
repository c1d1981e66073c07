// storage/async_writer.h — hashes buffers on one thread of its own and
// writes them on another, so whoever produces them (a socket read, a layer
// decoder) goes on while the previous buffers are hashed and written: on two
// cores a stream then moves at the speed of its slowest part instead of the
// sum of all of them, and a write that waits for the device (O_DIRECT,
// UploadWriter::bypass_cache) holds nobody up.
//
// Buffers are 1 MiB, 4 KiB-aligned (so a driver may write them with O_DIRECT)
// and come from a process-wide pool (at most 16 kept); they go back to it
// once hashed and written, so neither a long stream nor a new request
// touches fresh memory per chunk (costly on the 2-core VM, BENCHMARKS.md).
// Not thread-safe for callers: one producer. Errors of the worker threads
// come back from the next push/finish.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/digest.h"
#include "storage/blob_store.h"

namespace wharf::storage {

// A pooled, aligned buffer of Buffer::kSize bytes (contents undefined); back
// to the pool when destroyed. Empty when default-constructed or moved from.
class Buffer {
 public:
  static constexpr size_t kSize = 1 << 20;
  static constexpr size_t kAlign = 4096;
  static Buffer take();  // from the pool, or freshly allocated
  Buffer() = default;
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;
  char* data() const { return p_.get(); }
  static constexpr size_t size() { return kSize; }

 private:
  struct Release {
    void operator()(char* p) const noexcept;
  };
  explicit Buffer(char* p) : p_(p) {}
  std::unique_ptr<char, Release> p_;
};

class AsyncWriter {
 public:
  // `progress(total)` runs on the write thread after each buffer is written.
  AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress = {});
  ~AsyncWriter();  // drains and joins; errors are dropped (call finish() to see them)
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  Buffer take() { return Buffer::take(); }
  // Queues the first `n` bytes of `buf` for hashing and writing; blocks
  // while kDepth buffers wait. The shared form lets the caller keep reading
  // the buffer (it must not change it) after handing it over.
  void push(Buffer buf, size_t n) { push(std::make_shared<const Buffer>(std::move(buf)), n); }
  void push(std::shared_ptr<const Buffer> buf, size_t n);
  // Waits until everything pushed is hashed and written.
  void finish();

 private:
  static constexpr size_t kDepth = 4;
  struct Piece {
    std::shared_ptr<const Buffer> buf;
    size_t n;
  };
  using Queue = std::deque<Piece>;  // both queues get every piece; the buffer is shared
  // The body of both threads: takes pieces from `q` and hashes or writes them.
  void run(Queue& q, bool write);
  std::thread start(const char* name, Queue& q, bool write);

  UploadWriter& out_;
  core::Hasher& hash_;
  std::function<void(uint64_t)> progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  Queue hashq_, writeq_;
  int busy_ = 0;
  bool closing_ = false, failed_ = false;
  uint64_t total_ = 0;
  std::exception_ptr error_;
  std::thread hasher_, writer_;  // last: start once the members they use exist
};

}  // namespace wharf::storage
