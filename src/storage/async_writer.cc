#include "storage/async_writer.h"

#include <pthread.h>

namespace wharf::storage {

namespace {

// Buffers outlive the writers: every upload request gets its own AsyncWriter,
// and fresh 1 MiB buffers each time cost page faults and zero-filling (on
// this VM fresh memory is the expensive kind). Bounded: what is beyond
// kKeep is freed.
class BufferPool {
 public:
  static BufferPool& global() {
    static BufferPool p;
    return p;
  }
  std::string take() {
    {
      std::lock_guard lk(mu_);
      if (!free_.empty()) {
        std::string b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::string(AsyncWriter::kChunk, '\0');
  }
  void give(std::string&& b) {
    std::lock_guard lk(mu_);
    if (free_.size() < kKeep && b.size() == AsyncWriter::kChunk) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kKeep = 8;
  std::mutex mu_;
  std::vector<std::string> free_;
};

}  // namespace

AsyncWriter::AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress,
                         WriteOn where)
    : out_(out), hash_(hash), where_(where), progress_(std::move(progress)), thread_([this] {
        pthread_setname_np(pthread_self(), "wharf-hashwrite");  // visible in top -H / perf
        run();
      }) {}

AsyncWriter::~AsyncWriter() {
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& q : queue_) BufferPool::global().give(std::move(q.first));
}

std::string AsyncWriter::take() { return BufferPool::global().take(); }

void AsyncWriter::push(std::string buf, size_t n) {
  if (!n) return;
  if (where_ == WriteOn::Caller) {
    out_.write(buf.data(), n);
    total_ += n;
    if (progress_) progress_(total_);
  }
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return queue_.size() < kDepth || error_; });
  if (error_) std::rethrow_exception(error_);
  queue_.emplace_back(std::move(buf), n);
  cv_.notify_all();
}

void AsyncWriter::finish() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return (queue_.empty() && !busy_) || error_; });
  if (error_) std::rethrow_exception(error_);
}

void AsyncWriter::run() {
  for (;;) {
    std::string buf;
    size_t n = 0;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      buf = std::move(queue_.front().first);
      n = queue_.front().second;
      queue_.pop_front();
      busy_ = true;
    }
    bool failed = false;
    try {
      hash_.update(buf.data(), n);
      if (where_ == WriteOn::Worker) {
        out_.write(buf.data(), n);
        total_ += n;
        if (progress_) progress_(total_);
      }
    } catch (...) {
      std::lock_guard lk(mu_);
      error_ = std::current_exception();
      failed = true;
    }
    BufferPool::global().give(std::move(buf));
    std::lock_guard lk(mu_);
    busy_ = false;
    cv_.notify_all();
    if (failed) {
      queue_.clear();
      return;
    }
  }
}

}  // namespace wharf::storage
