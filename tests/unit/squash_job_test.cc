// A squash Job's state changes and what a Follower (the HTTP-free reader of a
// build in flight) makes of them: bytes from memory close behind the build,
// from disk further behind, waits, the end only once the config is known,
// failures. The build is played by the test through Job's own state changes,
// its staging upload written to a real filesystem BlobStore.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/digest.h"
#include "squash/follower.h"
#include "squash/job.h"
#include "store_backends.h"

namespace wharf::squash {
namespace {

using Step = Follower::Step;

Image test_image() {
  Image img;
  img.key = "k";
  return img;
}

// Plays a build: stages `layer` piece by piece into an upload of `blobs`.
class FakeBuild {
 public:
  FakeBuild(storage::BlobStore& blobs, std::string layer)
      : blobs_(blobs), layer_(std::move(layer)), job_(std::make_shared<Job>(test_image(), blobs)) {}
  std::shared_ptr<Job> job() { return job_; }
  void start() {
    job_->start_planning();
    state_ = blobs_.create_upload("staging");
    job_->start_writing("staging", layer_.size());
  }
  // Publishes the next `n` bytes (in memory only).
  void publish(size_t n) {
    auto b = std::make_shared<storage::Buffer>(storage::Buffer::take());
    std::memcpy(b->data(), layer_.data() + published_, n);
    published_ += n;
    job_->published(b, n);
    job_->notify();
  }
  // Writes what was published to the staging upload.
  void write_out() {
    auto w = blobs_.append_upload("staging", state_);
    w->write(layer_.data() + written_, published_ - written_);
    w->close();
    state_ = w->state();
    written_ = published_;
    job_->written(written_);
    job_->notify();
  }
  void complete() {
    job_->layer_complete("{\"config\":1}", core::sha256_of(layer_).str());
    job_->notify();
  }
  void commit() {
    blobs_.commit_upload("staging", state_, core::sha256_of(layer_));
    job_->done();
    job_->notify();
  }

 private:
  storage::BlobStore& blobs_;
  std::string layer_;
  std::shared_ptr<Job> job_;
  std::string state_;
  size_t published_ = 0, written_ = 0;
};

std::string random_bytes(size_t n) {
  std::mt19937 rng(7);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Takes one step's bytes (reading a Disk step's file) and says they were sent.
std::string take(Follower& f, Step& s) {
  std::string out;
  if (s.kind == Step::Memory) {
    out.assign(s.data, s.size);
  } else {
    EXPECT_EQ(s.kind, Step::Disk);
    out.resize(s.size);
    size_t got = 0;
    while (got < s.size) {
      size_t k = s.file->read(out.data() + got, s.size - got);
      EXPECT_GT(k, 0u) << "file ended early";
      if (!k) break;
      got += k;
    }
  }
  f.sent(s.size);
  return out;
}

class SquashJob : public ::testing::Test {
 protected:
  testing_backends::TempDir dir{"wharf-job"};
  std::unique_ptr<storage::BlobStore> blobs = testing_backends::blob_backend("filesystem").open(dir.path());
};

TEST_F(SquashJob, NothingIsSentBeforeThePlanAndTheEndWaitsForTheConfig) {
  const std::string layer = random_bytes(3 << 20);
  FakeBuild b(*blobs, layer);
  uint64_t seen = 0;
  EXPECT_EQ(start_of(*b.job(), seen), Start::Wait) << "queued";
  b.job()->start_planning();
  EXPECT_EQ(start_of(*b.job(), seen), Start::Wait) << "planning";
  b.start();
  ASSERT_EQ(start_of(*b.job(), seen), Start::Follow);

  Follower f(b.job());
  Step s = f.next();
  EXPECT_EQ(s.kind, Step::Wait) << "no bytes yet";
  const uint64_t before = s.seen;
  b.publish(1 << 20);
  EXPECT_GT(b.job()->changes(), before) << "a waiter would wake";
  std::string got;
  s = f.next();
  ASSERT_EQ(s.kind, Step::Memory) << "close behind the build: from memory";
  got += take(f, s);
  EXPECT_EQ(f.next().kind, Step::Wait);
  b.publish(1 << 20);
  b.publish(1 << 20);
  for (int i = 0; i < 2; ++i) {
    s = f.next();
    ASSERT_EQ(s.kind, Step::Memory);
    got += take(f, s);
  }
  EXPECT_EQ(got, layer);
  EXPECT_EQ(f.next().kind, Step::Wait) << "every byte sent, but no config yet: no end";
  b.write_out();
  b.complete();
  uint64_t seen2 = 0;
  EXPECT_EQ(start_of(*b.job(), seen2), Start::Wait) << "a new request waits for the commit and is served cached";
  s = f.next();
  ASSERT_EQ(s.kind, Step::End);
  EXPECT_EQ(f.config(), "{\"config\":1}");
  b.commit();
  EXPECT_EQ(start_of(*b.job(), seen2), Start::Cached);
}

TEST_F(SquashJob, AReaderFarBehindReadsFromDiskThenCatchesUpInMemory) {
  const size_t n = Job::kRecentPieces + 6;  // more pieces than memory keeps
  const std::string layer = random_bytes(n << 20);
  FakeBuild b(*blobs, layer);
  b.start();
  for (size_t i = 0; i + 2 < n; ++i) b.publish(1 << 20);
  b.write_out();  // on disk: the pieces no attached reader needs leave memory
  Follower f(b.job());  // attached late, at 0
  b.publish(1 << 20);   // still only in memory
  std::string got;
  int disk = 0, memory = 0;
  for (;;) {
    Step s = f.next();
    if (s.kind == Step::Wait) break;
    if (s.kind == Step::Disk) {
      ++disk;
      EXPECT_LE(s.size, Follower::kDiskStep) << "disk reads go a few MiB at a time, then look at memory again";
    } else {
      ++memory;
    }
    got += take(f, s);
  }
  EXPECT_GT(disk, 0);
  EXPECT_GT(memory, 0) << "the piece not on disk yet comes from memory";
  EXPECT_EQ(got, layer.substr(0, (n - 1) << 20));
  b.publish(1 << 20);
  b.write_out();
  b.complete();
  b.commit();
  for (Step s = f.next(); s.kind != Step::End; s = f.next()) {
    ASSERT_NE(s.kind, Step::Wait) << "done: nothing left to wait for";
    got += take(f, s);
  }
  EXPECT_EQ(got, layer);
}

TEST_F(SquashJob, ReadersFollowTheLayerAcrossItsCommit) {
  const std::string layer = random_bytes(2 << 20);
  FakeBuild b(*blobs, layer);
  b.start();
  b.publish(1 << 20);
  b.publish(1 << 20);
  b.write_out();
  b.complete();
  b.commit();  // the staging upload is now the blob named by the layer's digest
  Follower f(b.job());
  std::string got;
  for (Step s = f.next(); s.kind != Step::End; s = f.next()) {
    ASSERT_EQ(s.kind, Step::Disk) << "done: from the committed blob";
    got += take(f, s);
  }
  EXPECT_EQ(got, layer);
}

TEST_F(SquashJob, AFailureStopsEveryReaderAndNewRequestsSeeIt) {
  const std::string layer = random_bytes(2 << 20);
  FakeBuild b(*blobs, layer);
  b.start();
  b.publish(1 << 20);
  Follower f(b.job());
  Step s = f.next();
  ASSERT_EQ(s.kind, Step::Memory);
  take(f, s);
  b.job()->fail(std::make_exception_ptr(std::runtime_error("disk full")));
  b.job()->notify();
  EXPECT_THROW(f.next(), std::runtime_error) << "mid-stream: the response is cut short";
  uint64_t seen = 0;
  try {
    start_of(*b.job(), seen);
    ADD_FAILURE() << "a request that has sent nothing gets the failure";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk full");
  }
}

TEST_F(SquashJob, AFailureAfterTheLastByteIsNotAnEnd) {
  const std::string layer = random_bytes(1 << 20);
  FakeBuild b(*blobs, layer);
  b.start();
  b.publish(1 << 20);
  Follower f(b.job());
  Step s = f.next();
  take(f, s);
  b.job()->fail(std::make_exception_ptr(std::runtime_error("hash mismatch")));
  EXPECT_THROW(f.next(), std::runtime_error) << "the tail is never sent for a failed build";
}

TEST_F(SquashJob, ACacheHitIsDoneAndServedFromTheBlob) {
  const std::string layer = random_bytes(1 << 20);
  auto d = core::sha256_of(layer);
  blobs->put(d, layer);
  auto job = Job::cached(test_image(), *blobs, layer.size(), d.str(), "{}", std::nullopt);
  uint64_t seen = 0;
  EXPECT_EQ(start_of(*job, seen), Start::Cached);
  EXPECT_EQ(job->available(), layer.size());
  Follower f(job);
  std::string got;
  for (Step s = f.next(); s.kind != Step::End; s = f.next()) got += take(f, s);
  EXPECT_EQ(got, layer);
  EXPECT_EQ(f.config(), "{}");
  EXPECT_EQ(job->open_gzip(), nullptr);
}

TEST_F(SquashJob, MemoryKeepsWhatAnAttachedReaderStillNeedsAndNoMore) {
  const std::string layer = random_bytes(4 << 20);
  FakeBuild b(*blobs, layer);
  b.start();
  Follower slow(b.job());  // stays at 0
  for (int i = 0; i < 4; ++i) b.publish(1 << 20);
  b.write_out();
  EXPECT_TRUE(b.job()->recent(0)) << "an attached reader at 0 keeps the first piece in memory";
  {
    Follower other(b.job());
  }
  Step s = slow.next();
  ASSERT_EQ(s.kind, Step::Memory);
  EXPECT_EQ(std::string(s.data, s.size), layer.substr(0, 1 << 20));
  take(slow, s);
  EXPECT_FALSE(b.job()->recent(0)) << "once sent and on disk, a piece leaves memory";
}

}  // namespace
}  // namespace wharf::squash
