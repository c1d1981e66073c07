#include "squash/service.h"

#include <malloc.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <filesystem>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>
#include <thread>
#include <tuple>

#include "core/clock.h"
#include "core/crash.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/metrics.h"
#include "core/reference.h"
#include "image/manifest.h"
#include "image/platform.h"
#include "image/stored.h"
#include "squash/build.h"
#include "squash/docker_archive.h"
#include "squash/gzip.h"
#include "squash/index_codec.h"
#include "squash/verifying_reader.h"
#include "storage/fs_blob_store.h"
#include "storage/async_writer.h"

namespace wharf::squash {

using core::Error;
using core::ErrorCode;
using nlohmann::json;

namespace {

// Writes a build's layer to the local staging area (read by the build's
// readers while it grows) and to the object store's upload (committed when
// complete) as it goes. The state is the object store's.
class TeeWriter : public storage::UploadWriter {
 public:
  TeeWriter(std::unique_ptr<storage::UploadWriter> local, std::unique_ptr<storage::UploadWriter> remote)
      : local_(std::move(local)), remote_(std::move(remote)) {}
  void write(const char* p, size_t n) override {
    local_->write(p, n);
    remote_->write(p, n);
  }
  void close() override {
    local_->close();
    remote_->close();
  }
  std::string state() const override { return remote_->state(); }
  void drop_behind(uint64_t lag) override { local_->drop_behind(lag); }
  void bypass_cache() override { local_->bypass_cache(); }

 private:
  std::unique_ptr<storage::UploadWriter> local_, remote_;
};

std::unique_ptr<storage::UploadWriter> tee_writer(std::unique_ptr<storage::UploadWriter> local,
                                                  std::unique_ptr<storage::UploadWriter> remote) {
  return std::make_unique<TeeWriter>(std::move(local), std::move(remote));
}

// This process's local staging directory under `spill`; those of processes
// that are gone (killed mid-build) are removed.
std::string local_staging_dir(const std::string& spill) {
  std::error_code ec;
  const std::string stem = "squash-staging-";
  for (const auto& e : std::filesystem::directory_iterator(spill, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(stem, 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + stem.size()));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
  }
  std::string dir = spill + "/" + stem + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir;
}


int64_t now_s() { return core::unix_seconds(); }
// Cache recency is kept in milliseconds: several entries are used within a second.
int64_t now_ms() { return core::unix_millis(); }

std::string random_id() {
  unsigned char b[12];
  RAND_bytes(b, sizeof b);
  static const char* kHex = "0123456789abcdef";
  std::string s = "squash-";
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

// Translates engine failures into the registry's error table.
[[noreturn]] void rethrow_as_error(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const Error&) {
    throw;
  } catch (const LimitError& e) {
    throw Error(ErrorCode::LimitExceeded, e.what());
  } catch (const LayerError& e) {
    throw Error(ErrorCode::LayerInvalid, e.what());
  }
}

// Hands the memory of a build's indexes and plan back to the system: glibc
// keeps freed blocks in per-thread arenas otherwise (an RSS of 490 MB stayed
// after a 10^6-entry build; 21 MB after the trim).
void return_memory() { malloc_trim(0); }
}  // namespace

Service::Service(ServiceOptions opts, storage::BlobStore& blobs, meta::MetadataStore& meta)
    : opts_(std::move(opts)), blobs_(blobs), staging_store_(&blobs), meta_(meta), budget_(opts_.memory_budget_bytes) {
  if (!blobs_.capabilities().read_staged) {
    local_staging_ = storage::make_fs_blob_store(local_staging_dir(opts_.spill_dir));
    staging_store_ = local_staging_.get();
  }
  threads_.emplace_back([this] {  // sizes for HEAD: not behind the builds
    pthread_setname_np(pthread_self(), "wharf-plan");
    planner();
  });
  for (unsigned i = 0; i < std::max(1u, opts_.workers); ++i) threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "wharf-squash");
      worker();
    });
}

Service::~Service() {
  {
    std::lock_guard lk(push_mu_);
    pushing_.clear();
  }
  for (auto& f : finishing_) f->ix.reset();  // stops them; their layers' claims are released
  std::deque<Planning> unplanned;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    unplanned.swap(planning_);
  }
  cv_.notify_all();
  plan_cv_.notify_all();
  for (auto& t : threads_) t.join();
  for (auto& p : unplanned)  // every waiter hears back
    p.done(0, std::make_exception_ptr(Error(ErrorCode::Unavailable, "the server is stopping")));
}

Image Service::resolve(const std::string& repo, const std::string& ref, const std::string& platform) {
  std::string digest;
  if (ref.find(':') != std::string::npos) {
    auto d = core::Digest::parse(ref);
    if (!d) throw Error(ErrorCode::DigestInvalid, "invalid digest", ref);
    digest = d->str();
  } else {
    if (!core::valid_tag(ref)) throw Error(ErrorCode::TagInvalid, "invalid tag", ref);
    auto t = meta_.resolve_tag(repo, ref);
    if (!t) throw Error(ErrorCode::ManifestUnknown, "no such tag in " + repo, ref);
    digest = *t;
  }
  auto m = meta_.get_manifest(repo, digest);
  if (!m) throw Error(ErrorCode::ManifestUnknown, "manifest unknown", ref);
  if (m->media_type == image::kOciIndex || m->media_type == image::kDockerList) {
    auto want = image::parse_platform(platform.empty() ? opts_.default_platform : platform);
    if (!want) throw Error(ErrorCode::NotFound, "platform must be os/arch[/variant], e.g. linux/arm64/v8", platform);
    auto choice = image::choose_platform(m->body, *want);
    if (!choice.digest) {
      std::string have;
      for (auto& p : choice.available) have += (have.empty() ? "" : ", ") + p;
      throw Error(ErrorCode::ManifestUnknown,
                  "the image has no " + want->str() + " variant; it has: " + (have.empty() ? "none" : have),
                  want->str());
    }
    digest = *choice.digest;
    m = meta_.get_manifest(repo, digest);
    if (!m) throw Error(ErrorCode::ManifestUnknown, "the index names a manifest this repository lacks", digest);
  }
  if (m->media_type != image::kOciManifest && m->media_type != image::kDockerManifest)
    throw Error(ErrorCode::LayerInvalid, "only image manifests and indexes can be squashed, not " + m->media_type);
  auto parts = image::stored_image(m->body);
  if (!parts) throw Error(ErrorCode::LayerInvalid, "the manifest is not an image manifest: nothing to squash");
  Image img;
  img.repo = repo;
  img.manifest_digest = digest;
  const std::string& config_type = parts->config.media_type;
  if (!image::image_config_media_type(config_type))
    throw Error(ErrorCode::LayerInvalid,
                "this is an artifact (config " + config_type + "), not a runnable image: nothing to squash");
  if (parts->layers.empty()) throw Error(ErrorCode::LayerInvalid, "the image has no layers: nothing to squash");
  for (const auto& l : parts->layers) {
    if (!image::tar_layer_media_type(l.media_type))
      throw Error(ErrorCode::LayerInvalid,
                  "layer media type " + l.media_type + " is not a tar layer: not a runnable image");
    if (!meta_.linked_blob_size(repo, l.digest))
      throw Error(ErrorCode::LayerInvalid,
                  "layer " + l.digest + " is not in this registry" +
                      (l.has_urls ? " (foreign layers are never fetched from their urls)" : ""));
    img.layer_digests.push_back(l.digest);
  }
  auto cd = core::Digest::parse(parts->config.digest);
  auto cr = cd ? blobs_.open(*cd) : nullptr;
  if (!cr || !meta_.linked_blob_size(repo, cd->str()))
    throw Error(ErrorCode::LayerInvalid, "the image config blob is missing");
  std::string cfg;
  char buf[65536];
  while (size_t n = cr->read(buf, sizeof buf)) {
    cfg.append(buf, n);
    if (cfg.size() > 8 << 20) throw Error(ErrorCode::LimitExceeded, "image config is larger than 8 MiB");
  }
  if (core::digest_of(cd->algorithm(), cfg) != *cd) throw Error(ErrorCode::LayerInvalid, "config blob fails its digest");
  if (!image::config_is_object(cfg)) throw Error(ErrorCode::LayerInvalid, "the image config is not a JSON object");
  img.config = std::move(cfg);
  img.key = "v" + std::to_string(kFormatVersion) + ":" + digest;
  img.layer_dir = core::sha256_of("wharf-squash-v" + std::to_string(kFormatVersion) + " " + digest).hex();
  return img;
}

std::optional<meta::SquashRecord> Service::cached(const Image& img) {
  auto r = meta_.get_squash(img.key);
  if (r && !blobs_.stat(*core::Digest::parse(r->layer_digest))) {
    meta_.delete_squash(img.key);  // bytes gone: rebuild
    return std::nullopt;
  }
  return r;
}

std::shared_ptr<Job> Service::cache_hit(const Image& img) {
  auto r = cached(img);
  if (!r) return nullptr;
  std::optional<Job::Gzip> gz;
  if (!r->gz_digest.empty() && blobs_.stat(*core::Digest::parse(r->gz_digest)))
    gz = Job::Gzip{r->gz_digest, r->gz_size, r->layer_crc};
  auto j = Job::cached(img, blobs_, r->layer_size, r->layer_digest, r->config, std::move(gz));
  meta_.touch_squash(img.key, now_ms());
  core::Metrics::global().add("wharf_squash_cache_hits_total");
  return j;
}

Service::Acquired Service::acquire(const Image& img) {
  if (auto j = cache_hit(img)) return {j, ""};
  auto joined = [&]() -> std::shared_ptr<Job> {  // REQUIRES: mu_ held
    auto it = inflight_.find(img.key);
    if (it == inflight_.end()) return nullptr;
    core::Metrics::global().add("wharf_squash_joined_builds_total");
    return it->second;
  };
  // An idle worker takes a build at once; beyond that, queue_max may wait.
  auto check_room = [&] {  // REQUIRES: mu_ held
    if (queue_.size() >= opts_.queue_max + idle_workers_)
      throw Error(ErrorCode::Unavailable, "too many squash builds running and waiting; retry shortly");
  };
  {
    std::lock_guard lk(mu_);
    if (auto j = joined()) return {j, ""};
    check_room();
  }
  // The cluster-wide lease, taken outside mu_ (a database round trip). Holds
  // do not exclude within one process: inflight_ is looked at again below.
  auto lease = meta_.try_hold("squash:" + img.key);
  if (!lease) {
    if (auto j = cache_hit(img)) return {j, ""};  // it finished meanwhile
    core::Metrics::global().add("wharf_squash_builds_elsewhere_total");
    return {nullptr, meta_.squash_builder(img.key).value_or("")};
  }
  // The lease's previous holder may have just committed the entry.
  if (auto j = cache_hit(img)) return {j, ""};
  {
    std::lock_guard lk(mu_);
    if (auto j = joined()) return {j, ""};
    check_room();
  }
  if (!opts_.advertise.empty()) meta_.set_squash_builder(img.key, opts_.replica, opts_.advertise);
  std::lock_guard lk(mu_);
  if (auto j = joined()) return {j, ""};
  auto j = std::make_shared<Job>(img, blobs_, staging_store_);
  inflight_[img.key] = j;
  leases_[img.key] = std::move(lease);
  queue_.push_back(j);
  cv_.notify_one();
  return {j, ""};
}

void Service::plan_layer_size(const Image& img, SizeCallback done) {
  std::lock_guard lk(mu_);
  if (planning_.size() > opts_.queue_max)
    throw Error(ErrorCode::Unavailable, "too many squash sizes being planned; retry shortly");
  planning_.push_back({img, std::move(done)});
  plan_cv_.notify_one();
}

void Service::planner() {
  for (;;) {
    std::optional<Planning> p;
    {
      std::unique_lock lk(mu_);
      plan_cv_.wait(lk, [&] { return stopping_ || !planning_.empty(); });
      if (stopping_) return;
      p = std::move(planning_.front());
      planning_.pop_front();
    }
    plan(*p);
  }
}

void Service::plan(Planning& p) {
  uint64_t size = 0;
  std::exception_ptr err;
  try {
    try {
      MemoryBudget::Reservation held;
      size = plan_merge(index_image_budgeted(p.img, std::thread::hardware_concurrency(), held)).tar_size;
    } catch (...) {
      return_memory();
      rethrow_as_error(std::current_exception());
    }
    return_memory();
  } catch (...) {
    err = std::current_exception();
  }
  p.done(size, err);
}

LayerOpener Service::verified_layers(const Image& img) {
  return [this, &img](uint32_t i) -> std::unique_ptr<storage::BlobReader> {
    auto d = *core::Digest::parse(img.layer_digests[i]);
    auto r = blobs_.open(d);
    if (!r) throw LayerError("layer " + d.str() + " is missing from storage");
    return verifying_reader(std::move(r), d);
  };
}

std::vector<LayerIndex> Service::index_image(const Image& img, unsigned parallel, const MemoryCharge* charge) {
  // Every layer must be there before the first byte goes out, even those
  // that contribute nothing: a missing blob is a JSON error, not a cut body.
  for (const auto& d : img.layer_digests)
    if (!blobs_.stat(*core::Digest::parse(d))) throw LayerError("layer " + d + " is missing from storage");
  core::crash_point("squash-index-image");
  StoredIndexes stored(blobs_, meta_, img.layer_digests, indexing_);
  return index_layers(img.layer_digests.size(), verified_layers(img), opts_.limits, parallel, &stored,
                      opts_.checkpoint_spacing, charge);
}

uint64_t Service::planned_bytes(const Image& img, bool& all_indexed) {
  all_indexed = true;
  uint64_t bytes = 0;
  for (const auto& d : img.layer_digests) {
    auto rec = meta_.get_layer_index(d);
    auto id = rec && rec->format == kIndexFormat ? core::Digest::parse(rec->index_digest) : std::nullopt;
    auto st = id ? blobs_.stat(*id) : std::nullopt;
    if (!st) {
      all_indexed = false;
      continue;
    }
    // The entries as the plan holds them, plus the index blob (paths, link
    // targets, xattrs) once as bytes read and once decoded.
    bytes += rec->entries * kPlanBytesPerEntry + 2 * *st;
  }
  return bytes;
}

std::vector<LayerIndex> Service::index_image_budgeted(const Image& img, unsigned parallel,
                                                      MemoryBudget::Reservation& held) {
  bool all_indexed = false;
  const std::string what = "the image " + img.manifest_digest;
  planned_bytes(img, all_indexed);
  if (!all_indexed) {
    // The missing indexes are built (and persisted) first, charged to the
    // budget as they grow: a pass that finds the budget taken gives back
    // what it held and waits in line for what it had reached plus half.
    uint64_t want = 0;
    for (;;) {
      auto r = budget_.acquire(want, what);
      uint64_t prepaid = want, used = 0;  // what was reserved up front is used first
      std::mutex mu;
      MemoryCharge charge = [&](uint64_t n) {
        std::lock_guard lk(mu);
        used += n;
        if (used > budget_.total()) throw budget_.too_large(used, what);
        uint64_t from_prepaid = std::min(prepaid, n);
        prepaid -= from_prepaid;
        if (n > from_prepaid && !r.try_grow(n - from_prepaid)) throw BudgetBusy(used);
      };
      try {
        index_image(img, parallel, &charge);
        break;
      } catch (const BudgetBusy& b) {
        want = std::min(budget_.total(), b.bytes + b.bytes / 2);
        core::Metrics::global().add("wharf_squash_index_budget_waits_total");
      }
    }
    return_memory();
  }
  uint64_t need = planned_bytes(img, all_indexed);
  held = budget_.acquire(need, what);
  return index_image(img, parallel);
}

size_t Service::push_active_locked() {
  std::erase_if(finishing_, [](const auto& f) { return f->done.load(); });
  return pushing_.size() + finishing_.size();
}

void Service::upload_appended(const std::string& id, uint64_t offset, const char* p, size_t n) {
  std::lock_guard lk(push_mu_);
  auto it = pushing_.find(id);
  if (it == pushing_.end()) {
    if (offset != 0 || !looks_compressed_layer(p, n)) return;
    if (push_active_locked() >= std::max(1u, std::thread::hardware_concurrency() / 2)) return;
    auto setup = [this] { return budget_.charge_or_give_up("indexing a pushed layer"); };
    auto take = [this](size_t n) { return budget_.try_take(n); };
    auto give = [this](size_t n) { budget_.give(n); };
    it = pushing_.emplace(id, std::make_unique<StreamIndex>(opts_.limits, opts_.checkpoint_spacing, kPushIndexQueue,
                                                            setup, take, give)).first;
  }
  if (it->second->fed() != offset || !it->second->feed(p, n)) pushing_.erase(it);  // not indexed while pushed
}

void Service::upload_dropped(const std::string& id) {
  std::unique_ptr<StreamIndex> ix;  // destroyed (its thread joined) after the lock is released
  std::lock_guard lk(push_mu_);
  if (auto it = pushing_.find(id); it != pushing_.end()) {
    ix = std::move(it->second);
    pushing_.erase(it);
  }
}

void Service::upload_committed(const std::string& id, const std::string& digest, uint64_t size) {
  std::unique_ptr<StreamIndex> ix;
  {
    std::lock_guard lk(push_mu_);
    auto it = pushing_.find(id);
    if (it == pushing_.end()) return;
    ix = std::move(it->second);
    pushing_.erase(it);
  }
  if (ix->fed() != size) return;
  if (auto rec = meta_.get_layer_index(digest); rec && rec->format == kIndexFormat) return;  // pushed before
  {
    std::lock_guard lk(indexing_.mu);
    if (indexing_.layers.count(digest)) return;  // being indexed by a squash already
    indexing_.layers.insert(digest);
  }
  std::string stamp;
  if (auto d = core::Digest::parse(digest))
    if (auto st = blobs_.stamp(*d)) stamp = *st;
  auto f = std::make_shared<Finishing>();
  Finishing* raw = f.get();
  f->ix = std::move(ix);
  {
    std::lock_guard lk(push_mu_);
    finishing_.push_back(f);
  }
  raw->ix->end([this, raw, digest, stamp](std::optional<LayerIndex>& idx) {
    if (idx) {
      persist_index(blobs_, meta_, digest, *idx, stamp);
      core::Metrics::global().add("wharf_squash_layers_indexed_while_pushed_total");
      idx.reset();
    }
    {
      std::lock_guard lk(indexing_.mu);
      indexing_.layers.erase(digest);
    }
    indexing_.cv.notify_all();
    return_memory();
    raw->done = true;
  });
}

void Service::index_in_background(const std::string& repo, const std::string& digest) {
  std::lock_guard lk(mu_);
  if (background_.size() >= 1000) return;  // a flood of pushes: indexes get built on first squash instead
  background_.push_back([this, repo, digest] {
    try {
      // Charged to the budget as it grows; when the budget is taken it gives
      // up (the first squash indexes the layer then, waiting in line).
      Image img = resolve(repo, digest, "");
      MemoryCharge charge = budget_.charge_or_give_up("indexing " + digest);
      index_image(img, 1, &charge);
      core::Metrics::global().add("wharf_squash_background_indexes_total");
    } catch (const BudgetBusy&) {
      core::Metrics::global().add("wharf_squash_background_indexes_deferred_total");
    } catch (const std::exception&) {
      // not an image, a corrupt layer...: the squash request will say so
    }
    return_memory();
  });
  cv_.notify_one();
}

void Service::forget_manifest(const std::string& digest) {
  meta_.delete_squash_of_manifest(digest);
}

void Service::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    std::function<void()> task;
    {
      std::unique_lock lk(mu_);
      ++idle_workers_;
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty() || !background_.empty(); });
      --idle_workers_;
      if (stopping_) return;
      if (!queue_.empty()) {
        job = queue_.front();
        queue_.pop_front();
      } else {
        task = std::move(background_.front());
        background_.pop_front();
      }
    }
    if (task) {
      task();
      continue;
    }
    build(job);
    if (!opts_.advertise.empty()) {
      try {
        meta_.clear_squash_builder(job->image().key, opts_.replica);
      } catch (const std::exception& e) {  // harmless: a record is trusted only while the lease is held
        spdlog::warn("clearing the squash builder record of {} failed: {}", job->image().key, e.what());
      }
    }
    std::unique_ptr<meta::MetadataStore::Hold> lease;
    {
      std::lock_guard lk(mu_);
      inflight_.erase(job->image().key);
      if (auto it = leases_.find(job->image().key); it != leases_.end()) {
        lease = std::move(it->second);
        leases_.erase(it);
      }
    }
    lease.reset();  // outside mu_: releasing is a database round trip
  }
}

namespace {

// Appends to the staging upload, hashing the diff_id: each full buffer is
// published to the job's readers (in memory) as soon as it is filled, and
// hashed and written on the writer's two threads, so decoding keeps its core.
class StagingSink : public Sink {
 public:
  static constexpr uint64_t kDropBehind = 16 << 20;
  // `published(buf, n)` runs on the producer's thread for each piece handed
  // over; `written(total)` on the write thread once a piece is on disk.
  StagingSink(std::unique_ptr<storage::UploadWriter> w,
              std::function<void(std::shared_ptr<const storage::Buffer>, size_t)> published,
              std::function<void(uint64_t)> written)
      : w_(std::move(w)),
        published_(std::move(published)),
        aw_(*w_, h_, std::move(written)),
        cur_(aw_.take()) {
    // Readers send the newest bytes from memory, so the file is written
    // around the page cache (O_DIRECT): no copy into page-cache pages and
    // no writeback on this machine's two cores (BENCHMARKS.md). Where the
    // filesystem cannot, what is more than kDropBehind behind the end goes
    // out of memory once on disk, so the build reuses the same pages
    // instead of touching fresh ones.
    w_->bypass_cache();
    w_->drop_behind(kDropBehind);
  }
  void write(const char* p, size_t n) override {
    while (n) {
      size_t k = std::min(n, cur_.size() - used_);
      std::memcpy(cur_.data() + used_, p, k);
      used_ += k;
      p += k;
      n -= k;
      if (used_ == cur_.size()) hand_over();
    }
  }
  // Waits for everything to be written; returns the diff_id.
  core::Digest finish() {
    if (used_) hand_over();
    aw_.finish();
    w_->close();
    return h_.finish();
  }
  // The staged upload's driver state. REQUIRES: finish() returned.
  std::string state() const { return w_->state(); }

 private:
  void hand_over() {
    auto buf = std::make_shared<const storage::Buffer>(std::move(cur_));
    published_(buf, used_);
    aw_.push(std::move(buf), used_);
    cur_ = aw_.take();
    used_ = 0;
  }
  std::unique_ptr<storage::UploadWriter> w_;
  std::function<void(std::shared_ptr<const storage::Buffer>, size_t)> published_;
  core::Hasher h_;
  storage::AsyncWriter aw_;
  storage::Buffer cur_;
  size_t used_ = 0;
};

// Followers of a build are woken per 4 MiB (and at the end): fewer, larger
// writes, fewer wake-ups of the client.
constexpr uint64_t kNotifyStep = 4 << 20;

}  // namespace

void Service::build(const std::shared_ptr<Job>& job) {
  const Image& img = job->image();
  auto& metrics = core::Metrics::global();
  metrics.add("wharf_squash_builds_total");
  std::string staging, staging_state;
  try {
    job->start_planning();
    MemoryBudget::Reservation held;  // admitted from the persisted indexes; waits while the budget is taken
    auto idx = index_image_budgeted(img, std::thread::hardware_concurrency(), held);
    Plan plan = plan_merge(idx);
    const uint64_t tar_size = plan.tar_size;
    staging = random_id();
    staging_state = blobs_.create_upload(staging);
    // Registered like an upload session (under a name no repository can have)
    // so that the expiry purge removes what a killed process left behind.
    meta_.create_upload({staging, "_squash", now_s(), now_s(), 0, staging_state, ""},
                        meta::MetadataStore::Commit::Durable);
    std::string local_state = local_staging_ ? local_staging_->create_upload(staging) : "";
    job->start_writing(staging, plan.tar_size);
    job->notify();
    core::crash_point("squash-writing");
    int64_t touched = now_s();
    uint64_t told = 0;
    auto published = [&](std::shared_ptr<const storage::Buffer> buf, size_t n) {
      uint64_t end = job->published(std::move(buf), n);
      if (end - told >= kNotifyStep || end == tar_size) {
        told = end;
        job->notify();
      }
    };
    auto written = [&](uint64_t total) {
      job->written(total);
      core::crash_point("squash-mid-build");
      if (now_s() - touched >= 10) {  // keep the expiry purge away from a long build
        touched = now_s();
        meta_.touch_upload(staging, touched);
      }
    };
    StagingSink sink(local_staging_ ? tee_writer(local_staging_->append_upload(staging, local_state),
                                                 blobs_.append_upload(staging, staging_state))
                                    : blobs_.append_upload(staging, staging_state),
                     published, written);
    ChunkAccess chunks;
    chunks.open_at = [&](uint32_t i, uint64_t off) { return blobs_.open(*core::Digest::parse(img.layer_digests[i]), off); };
    chunks.unchanged = [&](uint32_t i, const std::string& stamp) {
      auto now = blobs_.stamp(*core::Digest::parse(img.layer_digests[i]));
      return now && *now == stamp;
    };
    chunks.read_blob = [&](const std::string& digest, uint64_t off, uint64_t len) {
      auto d = core::Digest::parse(digest);
      auto r = d ? blobs_.open(*d, off) : nullptr;
      std::string out(len, '\0');
      if (!r || !read_exactly(*r, out.data(), len))
        throw LayerError("the saved inflate states of a layer index are missing or short");
      return out;
    };
    write_layer(idx, plan, verified_layers(img), opts_.limits, sink, std::max(1u, std::thread::hardware_concurrency()),
                opts_.spill_dir, &chunks);
    // The indexes and the plan are done with: their memory goes back now.
    std::vector<LayerIndex>().swap(idx);
    plan = Plan{};
    held.release();
    return_memory();
    core::Digest diff_id = sink.finish();
    std::string config = squashed_config(img.config, diff_id.str(), img.manifest_digest);
    // The body is complete: readers that have sent the whole layer send the
    // tail now instead of waiting for the commit below (fsync, rename, the
    // record: 1 ms, or 150+ ms when the rename replaces a 1 GB blob of the
    // same digest that another image's squash left).
    job->layer_complete(config, diff_id.str());
    job->notify();
    meta::SquashRecord rec{img.key, img.manifest_digest, diff_id.str(), tar_size, img.layer_dir, config,
                           now_ms(), now_ms(), "", 0, 0};
    // Not under the job's lock: readers keep going (Job::open_at finds the
    // layer under either name) while this waits for the disk.
    meta_.claim_blob_write(diff_id.str());
    blobs_.commit_upload(staging, sink.state(), diff_id);
    if (local_staging_) local_staging_->delete_upload(staging, "");  // readers go on from blobs_ (Job::open_at)
    core::crash_point("squash-layer-renamed");
    meta_.delete_upload(staging);
    meta_.put_squash(rec);
    job->done();
    metrics.add("wharf_squash_bytes_built_total", tar_size);
    job->notify();
    compress(rec);
    evict(img.key);
  } catch (...) {
    metrics.add("wharf_squash_build_failures_total");
    std::exception_ptr err = std::current_exception();
    try {
      std::rethrow_exception(err);
    } catch (const ChunkError& e) {
      // The layer's chunks do not decode to what was indexed: forget the index,
      // so the next request re-indexes from the digest-verified blob (a damaged
      // blob then fails with its digest; a damaged saved state is replaced).
      spdlog::warn("squash build of {} failed: {}; the layer's index is dropped", img.manifest_digest, e.what());
      if (e.layer < img.layer_digests.size()) {
        try {
          meta_.delete_layer_index(img.layer_digests[e.layer]);
        } catch (...) {
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("squash build of {} failed: {}", img.manifest_digest, e.what());
    } catch (...) {
    }
    try {
      rethrow_as_error(err);
    } catch (const Error&) {
      err = std::current_exception();
    } catch (...) {
      // internal failure: keep as is
    }
    job->fail(err);
    if (!staging.empty()) {
      if (local_staging_) local_staging_->delete_upload(staging, "");
      blobs_.delete_upload(staging, staging_state);
      try {
        meta_.delete_upload(staging);
      } catch (...) {
      }
    }
    job->notify();
    return_memory();
  }
}

void Service::compress(const meta::SquashRecord& rec) {
  std::string staging = random_id(), staging_state;
  try {
    auto in = blobs_.open(*core::Digest::parse(rec.layer_digest));
    if (!in) return;
    staging_state = blobs_.create_upload(staging);
    meta_.create_upload({staging, "_squash", now_s(), now_s(), 0, staging_state, ""},
                        meta::MetadataStore::Commit::Durable);
    meta_.touch_upload(staging, now_s());  // a fsynced commit: the row outlives a power cut with the file it purges
    auto w = blobs_.append_upload(staging, staging_state);
    core::Hasher h;
    uint64_t size = 0;
    Deflater d([&](const char* p, size_t n) {
      w->write(p, n);
      h.update(p, n);
      size += n;
    });
    std::vector<char> buf(1 << 20);
    while (size_t n = in->read(buf.data(), buf.size())) d.write(buf.data(), n);
    d.sync_flush();
    w->close();
    core::Digest gz = h.finish();
    meta_.claim_blob_write(gz.str());
    blobs_.commit_upload(staging, w->state(), gz);
    meta_.delete_upload(staging);
    meta_.set_squash_gzip(rec.key, gz.str(), size, d.crc());
    core::Metrics::global().add("wharf_squash_gzip_bytes_total", size);
  } catch (const std::exception&) {
    blobs_.delete_upload(staging, staging_state);  // no gzip piece: requests compress on the fly
    try {
      meta_.delete_upload(staging);
    } catch (...) {
    }
  }
}

void Service::remove_evicted(const std::string& d) {
  auto m = meta_.remove_blob_if_unused(d, now_s() - 1, [&] { blobs_.remove(*core::Digest::parse(d)); });
  std::lock_guard lk(mu_);
  if (m == meta::MetadataStore::Mark::WrittenSince || m == meta::MetadataStore::Mark::Busy)
    unremoved_.insert(d);
  else
    unremoved_.erase(d);
}

void Service::evict(const std::string& keep) {
  std::set<std::string> again;
  {
    std::lock_guard lk(mu_);
    again.swap(unremoved_);
  }
  for (const auto& d : again) remove_evicted(d);
  // Within the bound (the common case): one aggregate query, no record read.
  if (meta_.squash_cache_bytes() <= opts_.cache_max_bytes) return;
  auto records = meta_.squash_records();  // least recently used first
  // What the cache holds on disk: each squashed layer and gzip piece once,
  // however many entries share it (images with the same layers squash to
  // the same bytes). Layer indexes are not counted: they belong to the
  // pushed layers and go when those are collected.
  struct Held {
    int users = 0;
    uint64_t size = 0;
  };
  std::map<std::string, Held> held;
  uint64_t total = 0;
  auto hold = [&](const std::string& d, uint64_t size) {
    if (d.empty()) return;
    auto& h = held[d];
    if (h.users++ == 0) total += (h.size = size);
  };
  for (const auto& r : records) {
    hold(r.layer_digest, r.layer_size);
    hold(r.gz_digest, r.gz_size);
  }
  for (const auto& r : records) {
    if (total <= opts_.cache_max_bytes) break;
    if (r.key == keep) continue;  // the entry just built stays, even alone over the bound
    meta_.delete_squash(r.key);
    // A blob goes when nothing else uses it (a pushed blob may have the
    // same bytes) and no commit of it is under way (MetadataStore's blob states).
    for (const auto& d : {r.layer_digest, r.gz_digest}) {
      if (d.empty() || --held[d].users > 0) continue;
      total -= held[d].size;
      remove_evicted(d);
    }
    core::Metrics::global().add("wharf_squash_evictions_total");
  }
}

}  // namespace wharf::squash
