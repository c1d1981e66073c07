// squash/service.h — squashed image downloads: resolving a tag or digest (and
// platform) to an image manifest, the cache of squashed layers, and the
// builds that fill it.
//
// One build per image: requests for an image being built join the build in
// flight (a Job); the build runs on the service's own threads and writes the
// layer into a staging upload that every attached client reads as it grows,
// so a slow or vanished client never slows or stops it. A build that fails
// leaves no cache entry; a committed entry is a blob (the layer, named by its
// diff_id) plus a SquashRecord. Cache keys are "v<format>:<image manifest
// digest>": two tags of one image share an entry; an index resolves to its
// chosen child first. Knows nothing of HTTP: errors are core::Error.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "meta/metadata_store.h"
#include "squash/build.h"
#include "squash/limits.h"
#include "squash/push_index.h"
#include "storage/async_writer.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// Part of every cache key: bumped whenever the squashed bytes for the same
// image change, so entries built by an older wharf are rebuilt, not served.
// 2: parents no layer declares are no longer emitted.
// 3: depth-first order (siblings by name) instead of byte order of whole paths.
inline constexpr int kFormatVersion = 3;

struct ServiceOptions {
  Limits limits;
  unsigned workers = 2;        // builds at a time
  size_t queue_max = 16;       // builds waiting; past that: 503 Retry-After
  std::string default_platform = "linux/amd64";
  uint64_t cache_max_bytes = 50ull << 30;  // squashed layers + gzip pieces on disk; LRU eviction beyond this
  std::string spill_dir = "/tmp";          // scratch for layers decoded ahead on other cores
  uint64_t checkpoint_spacing = 4 << 20;   // inflate checkpoints in layer indexes (0: none), build.h
  // Memory the builds and HEAD sizes being planned may hold at once, in
  // bytes. Each is admitted from its layers' persisted indexes before it
  // loads them (kPlanBytesPerEntry per entry plus the index blobs' bytes):
  // one that would exceed what is free waits, one that exceeds the whole
  // budget is refused (LIMIT_EXCEEDED naming squash.memory_budget_bytes).
  uint64_t memory_budget_bytes = 4ull << 30;
};

// Memory a build holds per layer entry at its peak (indexes, merge tree and
// plan), besides the entries' own path, link-target and xattr bytes:
// measured with bench/squash-entries.sh (10^6 empty files, BENCHMARKS.md).
inline constexpr uint64_t kPlanBytesPerEntry = 128;

// An index pass found the budget taken by others while its indexes grew:
// it gives back what it held and waits in line for `bytes` (what it had
// reached).
class BudgetBusy : public std::runtime_error {
 public:
  explicit BudgetBusy(uint64_t b) : std::runtime_error("squash memory budget taken"), bytes(b) {}
  uint64_t bytes;
};

// A budget of bytes shared by builds: acquire() waits until `bytes` fit.
// Thread-safe.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t total) : total_(total) {}
  class Reservation {
   public:
    Reservation() = default;
    Reservation(MemoryBudget* b, uint64_t n) : b_(b), n_(n) {}
    Reservation(Reservation&& o) noexcept : b_(std::exchange(o.b_, nullptr)), n_(o.n_) {}
    Reservation& operator=(Reservation&& o) noexcept {
      release();
      b_ = std::exchange(o.b_, nullptr);
      n_ = o.n_;
      return *this;
    }
    ~Reservation() { release(); }
    void release();
    // Takes `more` bytes at once if they are free, else false: it never
    // waits, so a holder never waits while holding (growers cannot deadlock).
    // Thread-safe (under the budget's lock).
    bool try_grow(uint64_t more);

   private:
    MemoryBudget* b_ = nullptr;
    uint64_t n_ = 0;
  };
  // Waits until `bytes` are free, in the order callers came. Throws
  // LimitError when `bytes` exceed the whole budget (`what` says for what).
  Reservation acquire(uint64_t bytes, const std::string& what);
  // A charge (build.h) holding its own reservation, taken in line (waiting
  // for those ahead), that then grows without waiting: when the budget is
  // taken it throws BudgetBusy, so its holder gives up instead of waiting
  // while holding. For indexes nobody waits for (at push, in the background).
  MemoryCharge charge_or_give_up(const std::string& what);
  // Takes or gives back bytes without a reservation; try_take never waits.
  bool try_take(uint64_t bytes);
  void give(uint64_t bytes);
  // The error for `bytes` over the whole budget.
  LimitError too_large(uint64_t bytes, const std::string& what) const;
  uint64_t total() const { return total_; }
  uint64_t used() const;

 private:
  const uint64_t total_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;
  uint64_t next_ticket_ = 0, serving_ = 0;
};

// A resolved image manifest.
struct Image {
  std::string repo;
  std::string manifest_digest;
  std::string config;                      // original config bytes
  std::vector<std::string> layer_digests;  // bottom-up
  std::string key;                         // cache key
  std::string layer_dir;                   // layer.tar's directory in the archive
};

// A cache entry or a build in flight. Thread-safe.
class Job {
 public:
  enum class State { Queued, Planning, Writing, Done, Failed };
  State state() const;
  // Valid once Writing: the exact size of layer.tar.
  uint64_t layer_size() const;
  // Bytes of layer.tar readable now (from memory or from disk).
  uint64_t available() const;
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
  // The squashed config, once the layer is complete and hashed: set while
  // the job is still Writing (its cache entry being committed), so readers
  // that have the whole layer can finish; empty before. Failed: the failure
  // (a core::Error).
  std::string config() const;
  std::exception_ptr failure() const;
  // Done: the cached gzip piece of the layer, if it exists yet.
  struct Gzip {
    std::string digest;
    uint64_t size = 0;
    uint32_t layer_crc = 0;
  };
  std::optional<Gzip> gzip() const;
  // Opens layer.tar at `offset` (Writing or Done): what is on disk.
  std::unique_ptr<storage::BlobReader> open_at(uint64_t offset);
  // Opens the cached gzip piece (when gzip() has one); nullptr if it vanished.
  std::unique_ptr<storage::BlobReader> open_gzip();
  // Counts the job's changes (state, config, bytes available): a waiter
  // reads it before looking at the job, subscribes, then sleeps only if it
  // is unchanged, so no change between its look and its sleep is missed.
  uint64_t changes() const { return changes_.load(); }
  // `cb` runs (on a build thread) whenever the job makes progress.
  int subscribe(std::function<void()> cb);
  void unsubscribe(int id);

 private:
  friend class Service;
  void notify();
  // Keeps what is not on disk yet, and what an attached reader has still to
  // send, at most kRecentPieces pieces of it (REQUIRES mu_).
  void trim_recent();
  static constexpr size_t kRecentPieces = 8;
  std::map<int, uint64_t> readers_;  // attached reader -> offset it has sent up to
  int next_reader_ = 0;
  mutable std::mutex mu_;
  State state_ = State::Queued;
  uint64_t layer_size_ = 0;
  std::atomic<uint64_t> available_{0};
  std::atomic<uint64_t> changes_{0};
  uint64_t written_ = 0;  // bytes of the staging file on disk; guarded by mu_
  struct Piece {
    uint64_t offset;
    size_t size;
    std::shared_ptr<const storage::Buffer> buf;
  };
  std::deque<Piece> recent_;  // contiguous, ending at available_ (trim_recent says what stays)
  std::string staging_id_;
  std::string layer_digest_;
  std::string config_;
  std::optional<Gzip> gzip_;
  std::exception_ptr failure_;
  std::map<int, std::function<void()>> subs_;
  int next_sub_ = 0;
  storage::BlobStore* blobs_ = nullptr;
  Image image_;
};

// Layers being indexed by some thread of this process (by digest): another
// thread that needs one waits for that index instead of decoding the layer a
// second time (a pull right after a push meets the background indexing).
struct LayersBeingIndexed {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> layers;
};

class Service {
 public:
  Service(ServiceOptions opts, storage::BlobStore& blobs, meta::MetadataStore& meta);
  ~Service();

  // Resolves `ref` (tag or digest) in `repo` for `platform` ("" = default).
  // Throws core::Error: MANIFEST_UNKNOWN, NOT_FOUND for a platform the index
  // lacks (the message lists those it has), LAYER_INVALID for artifacts.
  Image resolve(const std::string& repo, const std::string& ref, const std::string& platform);
  // A cache hit (state Done) or the build in flight for the image, starting
  // one when needed. Throws core::Error UNAVAILABLE when the queue is full.
  std::shared_ptr<Job> acquire(const Image& img);
  // The cached record for `img`, if any (does not start anything).
  std::optional<meta::SquashRecord> cached(const Image& img);
  // The exact size of layer.tar without building it: planned on the
  // service's planning thread (indexing layers that have no index yet, so
  // it may take a while), never on the caller's and never behind builds.
  // `done` runs once, on that thread, with the size or the failure (a
  // core::Error); with an error too if the service stops first. Throws
  // core::Error UNAVAILABLE when more than queue_max sizes wait.
  using SizeCallback = std::function<void(uint64_t, std::exception_ptr)>;
  void plan_layer_size(const Image& img, SizeCallback done);
  // Indexes the layers of image manifest `digest` in `repo` in the
  // background (when no build waits), so its first squash decodes each layer
  // once. Quietly does nothing for anything that is not an image.
  void index_in_background(const std::string& repo, const std::string& digest);
  // Drops cache entries of a deleted manifest.
  void forget_manifest(const std::string& digest);

  // Layers indexed while they are pushed (squash.index_on_push): the
  // registry reports each upload's bytes as they are handed to storage, in
  // order, and how the upload ended. An upload that starts like a gzip or
  // zstd stream is decoded on a thread of its own (at most
  // max(1, cores/2) at once; the bytes not yet decoded queued in memory, at
  // most kPushIndexQueue each and taken from the memory budget, as the index
  // itself is: an upload that finds either full is not indexed while pushed); at commit its layer is
  // claimed as being indexed, so a squash asked for at once waits for that
  // index instead of decoding the layer again. None of these blocks.
  void upload_appended(const std::string& id, uint64_t offset, const char* p, size_t n);
  void upload_committed(const std::string& id, const std::string& digest, uint64_t size);
  void upload_dropped(const std::string& id);
  static constexpr size_t kPushIndexQueue = 512 << 20;  // also taken from the memory budget

 private:
  // Opens layer i of `img`, checking its digest as it is read to the end;
  // throws LayerError when the blob is missing. `img` must outlive the opener.
  LayerOpener verified_layers(const Image& img);
  // Every layer's index (persisted ones reused, new ones stored).
  std::vector<LayerIndex> index_image(const Image& img, unsigned parallel, const MemoryCharge* charge = nullptr);
  // index_image() within the memory budget: layers without a persisted index
  // are indexed first (their memory bounded by limits.max_entries), then the
  // whole is admitted from the persisted indexes and loaded. The reservation
  // must be held until the indexes and the plan made from them are freed.
  std::vector<LayerIndex> index_image_budgeted(const Image& img, unsigned parallel, MemoryBudget::Reservation& held);
  // Bytes the image's persisted indexes need in memory while planned (0 for a layer without one).
  uint64_t planned_bytes(const Image& img, bool& all_indexed);
  void worker();
  void build(const std::shared_ptr<Job>& job);
  struct Planning;
  void planner();  // the planning thread: takes planning_
  void plan(Planning& p);
  // Evicts least recently used entries beyond cache_max_bytes, never `keep`.
  void evict(const std::string& keep);
  // Removes an evicted entry's blob unless something uses it; one written in
  // the last second (a commit of the same digest may be under way) is
  // remembered in unremoved_ and tried again at the next eviction.
  void remove_evicted(const std::string& digest);
  // Makes the cached gzip piece of a committed layer (after the build, on
  // the build thread; gzip requests meanwhile compress on the fly).
  void compress(const meta::SquashRecord& rec);

  ServiceOptions opts_;
  storage::BlobStore& blobs_;
  meta::MetadataStore& meta_;
  std::mutex mu_;
  std::condition_variable cv_;       // workers: queue_, background_
  std::condition_variable plan_cv_;  // the planner: planning_
  std::deque<std::shared_ptr<Job>> queue_;
  struct Planning {
    Image img;
    SizeCallback done;
  };
  std::deque<Planning> planning_;                 // sizes requests wait for (HEAD): the planner's
  std::deque<std::function<void()>> background_;  // runs only when queue_ is empty
  std::map<std::string, std::shared_ptr<Job>> inflight_;
  std::set<std::string> unremoved_;  // guarded by mu_; see remove_evicted
  LayersBeingIndexed indexing_;
  MemoryBudget budget_;
  // Uploads being indexed (by upload id), and those committed whose index
  // is still finishing (reaped once done).
  struct Finishing {
    std::unique_ptr<StreamIndex> ix;
    std::atomic<bool> done{false};
  };
  std::mutex push_mu_;
  std::map<std::string, std::unique_ptr<StreamIndex>> pushing_;
  std::vector<std::shared_ptr<Finishing>> finishing_;
  size_t push_active_locked();
  unsigned idle_workers_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace wharf::squash
