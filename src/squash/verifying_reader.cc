#include "squash/verifying_reader.h"

#include <pthread.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <tuple>

#include "squash/layer_decoder.h"
#include "storage/async_writer.h"

namespace wharf::squash {

namespace {

class VerifyingReader : public storage::BlobReader {
 public:
  VerifyingReader(std::unique_ptr<storage::BlobReader> in, core::Digest want)
      : in_(std::move(in)), want_(std::move(want)), left_(in_->remaining()), thread_([this] {
          pthread_setname_np(pthread_self(), "wharf-readahead");
          run();
        }) {}
  ~VerifyingReader() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  uint64_t remaining() const override { return left_; }
  size_t read(char* buf, size_t n) override {
    while (pos_ == cur_n_) {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return !ready_.empty() || done_; });
      if (ready_.empty()) {
        if (error_) std::rethrow_exception(error_);
        return 0;  // the end, digest verified
      }
      std::tie(cur_, cur_n_) = std::move(ready_.front());
      ready_.pop_front();
      pos_ = 0;
      cv_.notify_all();
    }
    size_t k = std::min(n, cur_n_ - pos_);
    std::memcpy(buf, cur_.data() + pos_, k);
    pos_ += k;
    left_ -= k;
    return k;
  }

 private:
  static constexpr size_t kAhead = 4;  // buffers read ahead
  void run() {
    try {
      core::Hasher h(want_.algorithm());
      for (;;) {
        auto b = storage::Buffer::take();
        size_t n = 0;
        while (n < b.size()) {
          size_t k = in_->read(b.data() + n, b.size() - n);
          if (!k) break;
          n += k;
        }
        if (n) h.update(b.data(), n);
        std::unique_lock lk(mu_);
        if (n == 0) {
          done_ = true;
          if (h.finish() != want_) error_ = std::make_exception_ptr(
              LayerError("layer blob " + want_.str() + " does not match its digest"));
          cv_.notify_all();
          return;
        }
        ready_.emplace_back(std::move(b), n);
        cv_.notify_all();
        cv_.wait(lk, [&] { return stop_ || ready_.size() < kAhead; });
        if (stop_) return;
      }
    } catch (...) {
      std::lock_guard lk(mu_);
      error_ = std::current_exception();
      done_ = true;
      cv_.notify_all();
    }
  }

  std::unique_ptr<storage::BlobReader> in_;  // used by the thread only
  core::Digest want_;
  uint64_t left_;  // the reader's
  storage::Buffer cur_;
  size_t cur_n_ = 0, pos_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<storage::Buffer, size_t>> ready_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace

std::unique_ptr<storage::BlobReader> verifying_reader(std::unique_ptr<storage::BlobReader> in, core::Digest want) {
  return std::make_unique<VerifyingReader>(std::move(in), std::move(want));
}

bool read_exactly(storage::BlobReader& r, char* p, size_t n) {
  for (size_t got = 0; got < n;) {
    size_t k = r.read(p + got, n - got);
    if (!k) return false;
    got += k;
  }
  return true;
}


}  // namespace wharf::squash
