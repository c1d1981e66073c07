#include "squash/follower.h"

#include <algorithm>
#include <stdexcept>

#include "core/metrics.h"

namespace wharf::squash {

Start start_of(const Job& job, uint64_t& seen) {
  seen = job.changes();
  switch (job.state()) {
    case Job::State::Failed:
      std::rethrow_exception(job.failure());
    case Job::State::Done:
      return Start::Cached;
    case Job::State::Writing:
      // Once the layer is complete (config known) the entry is being
      // committed: wait, and serve it cached.
      return job.config().empty() ? Start::Follow : Start::Wait;
    default:
      return Start::Wait;  // not planned: nothing can be sent yet
  }
}

Follower::Follower(std::shared_ptr<Job> job)
    : job_(std::move(job)), size_(job_->layer_size()), reader_(job_->attach(0)) {}

Follower::~Follower() { job_->detach(reader_); }

Follower::Step Follower::next() {
  Step s;
  s.seen = job_->changes();
  keep_.reset();
  if (pos_ < size_) {
    uint64_t avail = job_->available();
    auto st = job_->state();
    if (st == Job::State::Failed) throw std::runtime_error("squash build failed mid-stream");
    if (st == Job::State::Done) avail = size_;
    if (avail <= pos_) return s;  // Wait
    if (st != Job::State::Done) {
      if (auto piece = job_->recent(pos_)) {  // close behind the build: from memory
        keep_ = std::move(piece->keep);
        s.kind = Step::Memory;
        s.data = piece->data;
        s.size = std::min<uint64_t>(piece->size, avail - pos_);
        core::Metrics::global().add("wharf_squash_stream_bytes_total", s.size, "from=\"memory\"");
        return s;
      }
      avail = std::min({avail, job_->disk_end(), pos_ + kDiskStep});
      if (avail <= pos_) return s;  // Wait
      core::Metrics::global().add("wharf_squash_stream_bytes_total", avail - pos_, "from=\"disk\"");
    }
    s.kind = Step::Disk;
    s.file = job_->open_at(pos_);
    s.size = avail - pos_;
    return s;
  }
  // The tail needs the config: known once the layer is hashed, before the
  // entry is committed.
  if (job_->state() == Job::State::Failed) throw std::runtime_error("squash build failed at the end");
  config_ = job_->config();
  if (config_.empty()) return s;  // Wait
  if (job_->state() == Job::State::Failed) throw std::runtime_error("squash build failed at the end");
  s.kind = Step::End;
  return s;
}

void Follower::sent(uint64_t n) {
  pos_ += n;
  job_->advance(reader_, pos_);
}

}  // namespace wharf::squash
