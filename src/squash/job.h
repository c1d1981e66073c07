// squash/job.h — one squash cache entry or build in flight, and what its
// readers see of it.
//
// A Job is written by exactly one build (the service's worker thread that
// took it) through the state changes below, in this order:
//   Queued → start_planning → start_writing → published/written (repeated)
//          → layer_complete → done
// and fail() from any point before done. A cache hit is born Done
// (Job::cached). Any number of readers on any threads look at it at once.
// Every member below mu_ is guarded by it; available_ and changes_ are
// atomics readers poll without the lock. Subscriber callbacks run on the
// build's thread, under mu_: they must only post work elsewhere.
#pragma once

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/blob_store.h"
#include "storage/async_writer.h"  // storage::Buffer

namespace wharf::squash {

// A resolved image manifest.
struct Image {
  std::string repo;
  std::string manifest_digest;
  std::string config;                      // original config bytes
  std::vector<std::string> layer_digests;  // bottom-up
  std::string key;                         // cache key
  std::string layer_dir;                   // layer.tar's directory in the archive
};

class Job {
 public:
  enum class State { Queued, Planning, Writing, Done, Failed };
  // The cached gzip piece of a Done layer.
  struct Gzip {
    std::string digest;
    uint64_t size = 0;
    uint32_t layer_crc = 0;
  };

  // A job that will be built: Queued.
  // `staging`: the store holding the build's staging area while it is
  // written (one that can read an upload before its commit: blobs itself
  // when it can, else a local one); committed layers are read from `blobs`.
  Job(Image img, storage::BlobStore& blobs, storage::BlobStore* staging = nullptr)
      : blobs_(&blobs), staging_store_(staging ? staging : &blobs), image_(std::move(img)) {}
  // A cache hit: Done from the start, the layer the blob `layer_digest`.
  static std::shared_ptr<Job> cached(Image img, storage::BlobStore& blobs, uint64_t layer_size,
                                     std::string layer_digest, std::string config, std::optional<Gzip> gzip);

  const Image& image() const { return image_; }

  // ---- the build's state changes (the one build thread only) ----
  void start_planning();
  // The plan is made: the layer is `layer_size` bytes, staged in upload `staging_id`.
  void start_writing(std::string staging_id, uint64_t layer_size);
  // The next `n` bytes of the layer, in `buf`, handed to the writer: readers
  // may send them from memory at once. Returns the bytes now available.
  uint64_t published(std::shared_ptr<const storage::Buffer> buf, size_t n);
  // The first `total` bytes are on disk (in the staging upload).
  void written(uint64_t total);
  // Every byte is staged and hashed: the squashed config and the layer's
  // digest (its blob name once committed) are known, so readers that have
  // the whole layer can finish while the entry is committed.
  void layer_complete(std::string config, std::string layer_digest);
  // Committed: readers go on from the blob.
  void done();
  // The build failed with `err` (a core::Error where it could be said).
  void fail(std::exception_ptr err);
  // Wakes readers: subscribers run, changes() moves on. The state changes
  // above do not notify on their own, so the build decides how often
  // readers wake (published bytes are announced every few MiB).
  void notify();

  // ---- what readers see (any thread) ----
  State state() const;
  // Valid once Writing: the exact size of layer.tar.
  uint64_t layer_size() const;
  // Bytes of layer.tar readable now (from memory or from disk).
  uint64_t available() const { return available_.load(); }
  // A build keeps the layer's most recent MiB in memory (its staging file is
  // written around the page cache), so readers that follow it closely send
  // them from there: the bytes from `offset` to the end of the piece holding
  // it, valid while `keep` is held; nullopt when `offset` is not in memory
  // (then it is on disk, below disk_end()).
  struct Recent {
    std::shared_ptr<const storage::Buffer> keep;
    const char* data = nullptr;
    size_t size = 0;
  };
  std::optional<Recent> recent(uint64_t offset) const;
  // Where the bytes a reader behind the memory should read from disk end:
  // the first byte held in memory, at most what is on disk.
  uint64_t disk_end() const;
  // A reader says where it is, so the pieces behind every reader leave
  // memory at once and those a reader still needs stay (up to
  // kRecentPieces); a detached reader holds nothing.
  int attach(uint64_t at);
  void advance(int reader, uint64_t at);
  void detach(int reader);
  // The squashed config once layer_complete (empty before). Failed: failure().
  std::string config() const;
  std::exception_ptr failure() const;
  // Done: the cached gzip piece of the layer, if it exists yet.
  std::optional<Gzip> gzip() const;
  // Opens layer.tar at `offset` (Writing or Done): what is on disk. Throws
  // std::runtime_error when the build failed or the layer is gone.
  std::unique_ptr<storage::BlobReader> open_at(uint64_t offset);
  // Opens the cached gzip piece at `offset` (when gzip() has one); nullptr if
  // it vanished.
  std::unique_ptr<storage::BlobReader> open_gzip(uint64_t offset = 0);
  // Counts the job's changes (state, config, bytes available): a waiter
  // reads it before looking at the job, subscribes, then sleeps only if it
  // is unchanged, so no change between its look and its sleep is missed.
  uint64_t changes() const { return changes_.load(); }
  // `cb` runs (on a build thread) whenever the job makes progress.
  int subscribe(std::function<void()> cb);
  void unsubscribe(int id);

  static constexpr size_t kRecentPieces = 8;

 private:
  // Keeps what is not on disk yet, and what an attached reader has still to
  // send, at most kRecentPieces pieces of it (REQUIRES mu_).
  void trim_recent();

  storage::BlobStore* const blobs_;
  storage::BlobStore* const staging_store_;
  const Image image_;
  std::atomic<uint64_t> available_{0};
  std::atomic<uint64_t> changes_{0};

  mutable std::mutex mu_;
  // State below is protected by mu_.
  State state_ = State::Queued;
  uint64_t layer_size_ = 0;
  uint64_t written_ = 0;  // bytes of the staging upload on disk
  struct Piece {
    uint64_t offset;
    size_t size;
    std::shared_ptr<const storage::Buffer> buf;
  };
  std::deque<Piece> recent_;  // contiguous, ending at available_ (trim_recent says what stays)
  std::map<int, uint64_t> readers_;  // attached reader -> offset it has sent up to
  int next_reader_ = 0;
  std::string staging_id_;
  std::string layer_digest_;
  std::string config_;
  std::optional<Gzip> gzip_;
  std::exception_ptr failure_;
  std::map<int, std::function<void()>> subs_;
  int next_sub_ = 0;
};

}  // namespace wharf::squash
