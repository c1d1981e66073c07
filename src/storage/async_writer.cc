#include "storage/async_writer.h"

namespace wharf::storage {

AsyncWriter::AsyncWriter(UploadWriter& out, core::Hasher& hash, std::function<void(uint64_t)> progress)
    : out_(out), hash_(hash), progress_(std::move(progress)), thread_([this] { run(); }) {}

AsyncWriter::~AsyncWriter() {
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string AsyncWriter::take() {
  std::lock_guard lk(mu_);
  if (!free_.empty()) {
    std::string b = std::move(free_.back());
    free_.pop_back();
    b.clear();
    return b;
  }
  std::string b;
  b.reserve(kChunk);
  return b;
}

void AsyncWriter::push(std::string buf) {
  if (buf.empty()) return;
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return queue_.size() < kDepth || error_; });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(std::move(buf));
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
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      buf = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    bool failed = false;
    try {
      hash_.update(buf.data(), buf.size());
      out_.write(buf.data(), buf.size());
      total_ += buf.size();
      if (progress_) progress_(total_);
    } catch (...) {
      std::lock_guard lk(mu_);
      error_ = std::current_exception();
      failed = true;
    }
    std::lock_guard lk(mu_);
    busy_ = false;
    if (free_.size() < kDepth + 1) free_.push_back(std::move(buf));
    cv_.notify_all();
    if (failed) {
      queue_.clear();
      return;
    }
  }
}

}  // namespace wharf::storage
