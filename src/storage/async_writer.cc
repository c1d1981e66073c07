#include "storage/async_writer.h"

#include <pthread.h>

#include <cstdlib>
#include <new>
#include <vector>

namespace wharf::storage {

namespace {

// Buffers outlive the writers: every upload request gets its own AsyncWriter,
// and fresh 1 MiB buffers each time cost page faults (on this VM fresh memory
// is the expensive kind). Bounded: what is beyond kKeep is freed.
class BufferPool {
 public:
  static BufferPool& global() {
    static BufferPool p;
    return p;
  }
  BufferPool() { free_.reserve(kKeep); }  // give() never allocates
  ~BufferPool() {
    for (char* b : free_) std::free(b);
  }
  char* take() {
    {
      std::lock_guard lk(mu_);
      if (!free_.empty()) {
        char* b = free_.back();
        free_.pop_back();
        return b;
      }
    }
    void* p = std::aligned_alloc(Buffer::kAlign, Buffer::kSize);
    if (!p) throw std::bad_alloc();
    return static_cast<char*>(p);
  }
  void give(char* b) noexcept {
    {
      std::lock_guard lk(mu_);
      if (free_.size() < kKeep) {
        free_.push_back(b);
        return;
      }
    }
    std::free(b);
  }

 private:
  // A squash build's worth (its in-memory pieces, Job::kRecentPieces, the
  // queues and the buffer being filled), so a build or a push recycles every
  // buffer it uses: a smaller pool made the allocator churn (fresh pages,
  // pushes 9.8 -> 17.6 ms and a higher peak RSS, BENCHMARKS.md).
  static constexpr size_t kKeep = 16;
  std::mutex mu_;
  std::vector<char*> free_;
};

}  // namespace

Buffer Buffer::take() {
  return Buffer(BufferPool::global().take());
}

void Buffer::Release::operator()(char* p) const noexcept { BufferPool::global().give(p); }

AsyncWriter::AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress)
    : out_(out),
      hash_(hash),
      progress_(std::move(progress)),
      hasher_(start("wharf-hash", hashq_, false)),
      writer_(start("wharf-write", writeq_, true)) {}

std::thread AsyncWriter::start(const char* name, Queue& q, bool write) {
  return std::thread([this, name, &q, write] {
    pthread_setname_np(pthread_self(), name);  // visible in top -H / perf
    run(q, write);
  });
}

AsyncWriter::~AsyncWriter() {
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  hasher_.join();
  writer_.join();
}

void AsyncWriter::push(std::shared_ptr<const Buffer> buf, size_t n) {
  if (!n) return;
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return (hashq_.size() < kDepth && writeq_.size() < kDepth) || error_; });
  if (error_) std::rethrow_exception(error_);
  hashq_.push_back({buf, n});
  writeq_.push_back({std::move(buf), n});
  cv_.notify_all();
}

void AsyncWriter::finish() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return (hashq_.empty() && writeq_.empty() && busy_ == 0) || error_; });
  if (error_) std::rethrow_exception(error_);
}

void AsyncWriter::run(Queue& q, bool write) {
  for (;;) {
    Piece piece;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return !q.empty() || closing_ || failed_; });
      if (q.empty() || failed_) return;
      piece = std::move(q.front());
      q.pop_front();
      ++busy_;
    }
    bool failed = false;
    try {
      if (!write) {
        hash_.update(piece.buf->data(), piece.n);
      } else {
        out_.write(piece.buf->data(), piece.n);
        total_ += piece.n;  // only the write thread touches it
        if (progress_) progress_(total_);
      }
    } catch (...) {
      failed = true;
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    piece.buf.reset();  // the buffer goes back to the pool once both threads (and the caller) are done with it
    std::lock_guard lk(mu_);
    --busy_;
    if (failed) {
      failed_ = true;
      hashq_.clear();
      writeq_.clear();
    }
    cv_.notify_all();
    if (failed) return;
  }
}

}  // namespace wharf::storage
