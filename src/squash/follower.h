// squash/follower.h — what one response sends of a squashed layer, as the
// build writes it or from the cache: no HTTP here (the endpoint turns each
// step into writes on its connection).
//
// A reader asks next(), sends the step's bytes, says sent(n), and asks
// again; a Wait step means "nothing new: sleep until the job's changes()
// moves past `seen`". Close behind a build the bytes come from the job's
// memory; further behind from disk, a few MiB at a time up to where memory
// begins, so a reader that catches up goes back to memory. One Follower per
// response, used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "squash/job.h"

namespace wharf::squash {

// How a response for a job can begin: Wait (not planned yet, or the layer is
// complete and being committed: it is served cached in a moment), Follow
// (stream as the build writes), Cached (Done: the whole representation is
// known). Throws the build's failure. `seen`: changes() read before looking.
enum class Start { Wait, Follow, Cached };
Start start_of(const Job& job, uint64_t& seen);

class Follower {
 public:
  // How much a reader behind the build reads from disk before it looks at
  // what the build holds in memory again.
  static constexpr uint64_t kDiskStep = 4 << 20;

  struct Step {
    enum Kind { Memory, Disk, Wait, End } kind = Wait;
    // Memory: the next `size` bytes at `data`, valid until the next call.
    const char* data = nullptr;
    // Memory and Disk: how many bytes this step offers.
    uint64_t size = 0;
    // Disk: positioned at the next byte; read `size` bytes of it.
    std::unique_ptr<storage::BlobReader> file;
    // Wait: the job's changes() before it was looked at.
    uint64_t seen = 0;
  };

  // Follows `job` (Writing or Done) from the layer's first byte.
  explicit Follower(std::shared_ptr<Job> job);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  // The next step. End: every byte of the layer is sent and config() is
  // the squashed config. Throws std::runtime_error when the build failed.
  Step next();
  // `n` bytes of the last step went out.
  void sent(uint64_t n);
  uint64_t position() const { return pos_; }
  // Valid after End.
  const std::string& config() const { return config_; }

 private:
  std::shared_ptr<Job> job_;
  const uint64_t size_;
  int reader_;
  uint64_t pos_ = 0;
  std::shared_ptr<const storage::Buffer> keep_;  // what the last Memory step points into
  std::string config_;
};

}  // namespace wharf::squash
