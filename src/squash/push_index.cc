#include "squash/push_index.h"

#include <pthread.h>

#include <cstring>

namespace wharf::squash {

bool looks_compressed_layer(const char* p, size_t n) {
  if (n >= 2 && static_cast<unsigned char>(p[0]) == 0x1f && static_cast<unsigned char>(p[1]) == 0x8b) return true;
  return n >= 4 && std::memcmp(p, "\x28\xb5\x2f\xfd", 4) == 0;
}

// The fed bytes as a blob: read() waits for more until end() or a stop.
class StreamIndex::Reader : public storage::BlobReader {
 public:
  explicit Reader(StreamIndex& s) : s_(s) {}
  uint64_t remaining() const override { return UINT64_MAX; }  // not known while pushed; unused by the decoder
  size_t read(char* buf, size_t n) override {
    std::unique_lock lk(s_.mu_);
    s_.cv_.wait(lk, [&] { return s_.stop_ || !s_.queue_.empty() || s_.ended_; });
    if (s_.stop_) throw std::runtime_error("push index stopped");
    if (s_.queue_.empty()) return 0;
    auto& front = s_.queue_.front();
    size_t k = std::min(n, front.size() - pos_);
    std::memcpy(buf, front.data() + pos_, k);
    pos_ += k;
    if (pos_ == front.size()) {
      s_.queued_ -= front.size();
      s_.give_(front.size());
      s_.queue_.pop_front();
      pos_ = 0;
    }
    return k;
  }

 private:
  StreamIndex& s_;
  size_t pos_ = 0;
};

StreamIndex::StreamIndex(const Limits& limits, uint64_t spacing, size_t queue_max,
                         std::function<MemoryCharge()> setup, std::function<bool(size_t)> take,
                         std::function<void(size_t)> give)
    : limits_(limits),
      spacing_(spacing),
      queue_max_(queue_max),
      setup_(std::move(setup)),
      take_(std::move(take)),
      give_(std::move(give)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "wharf-pushindex");
    run();
  });
}

StreamIndex::~StreamIndex() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  give_(queued_);
}

bool StreamIndex::feed(const char* p, size_t n) {
  {
    std::lock_guard lk(mu_);
    if (failed_ || ended_ || queued_ + n > queue_max_ || !take_(n)) {
      failed_ = true;
      return false;
    }
    queue_.emplace_back(p, n);
    queued_ += n;
    fed_ += n;
  }
  cv_.notify_all();
  return true;
}

uint64_t StreamIndex::fed() const {
  std::lock_guard lk(mu_);
  return fed_;
}

void StreamIndex::end(Done done) {
  {
    std::lock_guard lk(mu_);
    ended_ = true;
    done_ = std::move(done);
  }
  cv_.notify_all();
}

void StreamIndex::run() {
  std::optional<LayerIndex> idx;
  MemoryCharge charge;  // holds the index's reservation until `done` has run
  try {
    charge = setup_();
    idx = index_layer(std::make_unique<Reader>(*this), limits_, spacing_, &charge);
  } catch (const std::exception&) {
    idx.reset();  // not a tar layer, a limit, the budget taken, or stopped
  }
  Done done;
  {
    std::unique_lock lk(mu_);
    if (!idx) failed_ = true;  // later feeds say so
    cv_.wait(lk, [&] { return stop_ || ended_; });
    if (!ended_) return;  // stopped before the commit: nobody waits for it
    if (stop_ || !queue_.empty()) idx.reset();  // stopped, or bytes past the layer's end
    done = std::move(done_);
  }
  if (done) done(idx);
}

}  // namespace wharf::squash
