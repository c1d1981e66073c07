// squash/push_index.h — indexing a layer while it is pushed: the upload's
// bytes, copied as they arrive, are decoded on a thread of their own, so
// the index is complete about when the push is and a squash asked for right
// after it does not wait for a second pass over the layer.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "squash/build.h"

namespace wharf::squash {

// True when `p` starts like a layer this squash decodes (gzip or zstd).
bool looks_compressed_layer(const char* p, size_t n);

// One upload being indexed. feed() never blocks; the thread decodes what
// was fed and, once end() was called, hands the finished index (or nullopt
// when the bytes were not a tar layer, a limit was hit or `charge` threw)
// to `done`, on its own thread. Destruction stops it; once end() was
// called, `done` runs in any case (with nullopt when stopped first).
class StreamIndex {
 public:
  using Done = std::function<void(std::optional<LayerIndex>&)>;
  // `setup` runs first on the thread (it may block) and returns the charge
  // the index is built under. Queued bytes are taken with `take` (which
  // must not block; false: no room) and handed back with `give` as they
  // are decoded.
  StreamIndex(const Limits& limits, uint64_t checkpoint_spacing, size_t queue_max,
              std::function<MemoryCharge()> setup, std::function<bool(size_t)> take,
              std::function<void(size_t)> give);
  ~StreamIndex();
  // Queues a copy of n bytes that follow what was fed. False when the
  // queue holds queue_max bytes, `take` refused or the index failed: the
  // upload is then not indexed here.
  bool feed(const char* p, size_t n);
  uint64_t fed() const;
  // No more bytes: when the index is complete, `done` runs.
  void end(Done done);

 private:
  class Reader;
  void run();

  const Limits limits_;
  const uint64_t spacing_;
  const size_t queue_max_;
  std::function<MemoryCharge()> setup_;
  std::function<bool(size_t)> take_;
  std::function<void(size_t)> give_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_ = 0;
  uint64_t fed_ = 0;
  bool ended_ = false, stop_ = false, failed_ = false;
  Done done_;
  std::thread thread_;
};

}  // namespace wharf::squash
