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
#include "squash/job.h"
#include "squash/memory_budget.h"
#include "squash/stored_indexes.h"
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
  // Replicas (cluster: in the configuration): a build is leased cluster-wide
  // (the hold "squash:<key>" of the metadata store) and the builder records
  // `advertise` for it, so other replicas relay its stream instead of
  // building again. Empty: nothing recorded (other processes sharing the
  // store still do not build what this one builds).
  std::string replica;
  std::string advertise;
};

// Memory a build holds per layer entry at its peak (indexes, merge tree and
// plan), besides the entries' own path, link-target and xattr bytes:
// measured with bench/squash-entries.sh (10^6 empty files, BENCHMARKS.md).
inline constexpr uint64_t kPlanBytesPerEntry = 128;

class Service {
 public:
  Service(ServiceOptions opts, storage::BlobStore& blobs, meta::MetadataStore& meta);
  ~Service();

  // Resolves `ref` (tag or digest) in `repo` for `platform` ("" = default).
  // Throws core::Error: MANIFEST_UNKNOWN, NOT_FOUND for a platform the index
  // lacks (the message lists those it has), LAYER_INVALID for artifacts.
  Image resolve(const std::string& repo, const std::string& ref, const std::string& platform);
  // What acquire() found: the job — a cache hit (state Done) or the build in
  // flight in this process, started when needed — or none when another
  // process sharing the metadata store holds the image's build lease:
  // `builder` is then the address it advertises for the build ("" when it
  // advertises none or has not recorded it yet).
  struct Acquired {
    std::shared_ptr<Job> job;
    std::string builder;
  };
  // Throws core::Error UNAVAILABLE when the queue is full.
  Acquired acquire(const Image& img);
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
  // Where builds stage their layer while readers follow it: blobs_ when it
  // can read an upload before its commit, else a filesystem store under
  // spill_dir of this process's own (an object store): the build then
  // writes both as it goes and commits to blobs_ when complete.
  std::unique_ptr<storage::BlobStore> local_staging_;
  storage::BlobStore* staging_store_;
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
  // The cluster-wide build lease of each job in inflight_ (released, and the
  // builder record cleared, once the build has ended).
  std::map<std::string, std::unique_ptr<meta::MetadataStore::Hold>> leases_;
  // A cache hit as a Done job, or null.
  std::shared_ptr<Job> cache_hit(const Image& img);
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
