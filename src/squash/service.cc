#include "squash/service.h"

#include <malloc.h>
#include <openssl/rand.h>
#include <pthread.h>

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
#include "storage/async_writer.h"

namespace wharf::squash {

using core::Error;
using core::ErrorCode;
using nlohmann::json;

namespace {

int64_t now_s() { return core::unix_seconds(); }
// Cache recency is kept in milliseconds: several entries are used within a second.
int64_t now_ms() { return core::unix_millis(); }

// Reads a blob ahead on a thread of its own and verifies its digest: that
// thread copies the blob out of the page cache (or waits for the disk) and
// hashes it, 1 MiB at a time, a few MiB ahead of the reader, which usually
// inflates what it reads and so keeps its core to itself. The reader sees a
// LayerError at the end when the digest does not match. Indexing a 1 GB gzip
// layer: the copy out of the page cache was 13% of the indexing thread's time
// and the SHA-256 as much again (BENCHMARKS.md, 2026-11-27).
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

// Reads exactly n bytes; false when the blob ends first.
bool read_exactly(storage::BlobReader& r, char* p, size_t n) {
  for (size_t got = 0; got < n;) {
    size_t k = r.read(p + got, n - got);
    if (!k) return false;
    got += k;
  }
  return true;
}

// Stores `idx` as the persisted index of `layer` (its saved inflate states a
// blob of their own); `stamp`: the blob's BlobStore::stamp taken before it
// was read. Failures are quiet: an index that cannot be stored is rebuilt.
void persist_index(storage::BlobStore& blobs, meta::MetadataStore& meta, const std::string& layer, LayerIndex& idx,
                   const std::string& stamp) {
  core::Metrics::global().add("wharf_squash_layers_indexed_total");
  try {
    auto& cp = idx.checkpoints;
    if (!stamp.empty() && !cp.chunks.empty()) cp.blob_stamp = stamp;
    if (cp.states && !cp.states->empty()) {
      auto sd = core::sha256_of(*cp.states);
      meta.claim_blob_write(sd.str());
      blobs.put(sd, *cp.states);
      cp.states_digest = sd.str();
    }
    std::string bytes = encode_index(idx);
    auto d = core::sha256_of(bytes);
    meta.claim_blob_write(d.str());
    blobs.put(d, bytes);
    meta.put_layer_index({layer, kIndexFormat, d.str(), idx.size(), cp.states_digest});
  } catch (const std::exception&) {
    // an index that cannot be stored is rebuilt next time
  }
}

// Persisted layer indexes: blobs named by their digest, found through the
// metadata store by layer digest. A miss claims the layer in `indexing`
// until store() or abandon(); a load() of a claimed layer waits for it. A
// thread holds at most one claim and never waits while holding it.
class StoredIndexes : public IndexCache {
 public:
  StoredIndexes(storage::BlobStore& b, meta::MetadataStore& m, const std::vector<std::string>& layers,
                LayersBeingIndexed& indexing)
      : blobs_(b), meta_(m), layers_(layers), indexing_(indexing) {}
  std::optional<LayerIndex> load(uint32_t i) override {
    {
      std::unique_lock lk(indexing_.mu);
      indexing_.cv.wait(lk, [&] { return !indexing_.layers.count(layers_[i]); });
    }
    if (auto idx = load_stored(i)) return idx;
    std::lock_guard lk(indexing_.mu);
    // Claimed by another thread between the wait and this check (rare): index
    // it here too rather than wait again; both give the same index.
    if (indexing_.layers.count(layers_[i])) return std::nullopt;
    indexing_.layers.insert(layers_[i]);
    claimed_.insert(i);
    // Taken before the bytes are read and hashed: a later squash that finds
    // the same stamp may check the chunks by CRC-32 only.
    if (auto d = core::Digest::parse(layers_[i]))
      if (auto st = blobs_.stamp(*d)) stamps_[i] = *st;
    return std::nullopt;
  }
  void abandon(uint32_t i) override { release(i); }
  void store(uint32_t i, LayerIndex& idx) override {
    struct Release {
      StoredIndexes* s;
      uint32_t i;
      ~Release() { s->release(i); }
    } release{this, i};
    std::string stamp;
    {
      std::lock_guard lk(indexing_.mu);
      if (auto it = stamps_.find(i); it != stamps_.end()) stamp = it->second;
    }
    persist_index(blobs_, meta_, layers_[i], idx, stamp);
  }
  ~StoredIndexes() override {
    for (uint32_t i : std::set<uint32_t>(claimed_)) release(i);
  }

 private:
  void release(uint32_t i) {
    std::lock_guard lk(indexing_.mu);
    if (claimed_.erase(i)) indexing_.layers.erase(layers_[i]);
    indexing_.cv.notify_all();
  }
  std::optional<LayerIndex> load_stored(uint32_t i) {
    auto rec = meta_.get_layer_index(layers_[i]);
    if (!rec || rec->format != kIndexFormat) return std::nullopt;
    auto d = core::Digest::parse(rec->index_digest);
    auto r = d ? blobs_.open(*d) : nullptr;
    if (!r) return std::nullopt;
    std::string bytes(r->remaining(), '\0');
    if (!read_exactly(*r, bytes.data(), bytes.size())) return std::nullopt;
    if (core::digest_of(d->algorithm(), bytes) != *d) return std::nullopt;
    core::Metrics::global().add("wharf_squash_index_hits_total");
    auto idx = decode_index(bytes);
    if (idx && !idx->checkpoints.states_digest.empty()) {  // states gone: decode that layer on one core
      auto sd = core::Digest::parse(idx->checkpoints.states_digest);
      if (!sd || !blobs_.stat(*sd)) idx->checkpoints = InflateCheckpoints{};
    }
    return idx;
  }

  storage::BlobStore& blobs_;
  meta::MetadataStore& meta_;
  const std::vector<std::string>& layers_;
  LayersBeingIndexed& indexing_;
  std::set<uint32_t> claimed_;  // by this build; guarded by indexing_.mu
  std::map<uint32_t, std::string> stamps_;  // of the claimed layers, taken before indexing; same guard
};

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

}  // namespace

// ---- Job --------------------------------------------------------------------

Job::State Job::state() const {
  std::lock_guard lk(mu_);
  return state_;
}
uint64_t Job::layer_size() const {
  std::lock_guard lk(mu_);
  return layer_size_;
}
uint64_t Job::available() const { return available_.load(); }
uint64_t Job::disk_end() const {
  std::lock_guard lk(mu_);
  return std::min(written_, recent_.empty() ? available_.load() : recent_.front().offset);
}
std::optional<Job::Recent> Job::recent(uint64_t offset) const {
  std::lock_guard lk(mu_);
  if (recent_.empty() || offset < recent_.front().offset) return std::nullopt;
  // Pieces are whole buffers but the last: find the one holding `offset`.
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it)
    if (offset >= it->offset && offset < it->offset + it->size)
      return Recent{it->buf, it->buf->data() + (offset - it->offset), static_cast<size_t>(it->offset + it->size - offset)};
  return std::nullopt;
}
std::string Job::config() const {
  std::lock_guard lk(mu_);
  return config_;
}
std::exception_ptr Job::failure() const {
  std::lock_guard lk(mu_);
  return failure_;
}
std::optional<Job::Gzip> Job::gzip() const {
  std::lock_guard lk(mu_);
  return gzip_;
}

void Job::trim_recent() {
  uint64_t slowest = available_;
  for (const auto& [_, at] : readers_) slowest = std::min(slowest, at);
  while (!recent_.empty()) {
    const Piece& p = recent_.front();
    const bool on_disk = p.offset + p.size <= written_;
    const bool wanted = p.offset + p.size > slowest && recent_.size() <= kRecentPieces;
    if (!on_disk || wanted) break;
    recent_.pop_front();
  }
}
int Job::attach(uint64_t at) {
  std::lock_guard lk(mu_);
  readers_[++next_reader_] = at;
  return next_reader_;
}
void Job::advance(int reader, uint64_t at) {
  std::lock_guard lk(mu_);
  readers_[reader] = at;
  trim_recent();
}
void Job::detach(int reader) {
  std::lock_guard lk(mu_);
  readers_.erase(reader);
  trim_recent();
}

std::unique_ptr<storage::BlobReader> Job::open_at(uint64_t offset) {
  // Files are opened outside the lock. While Writing the layer is the staging
  // upload until the commit renames it to the blob named by the layer digest,
  // which is set before the commit starts: if the upload is gone, the digest
  // read after that is set and names the file.
  auto look = [&] {
    std::lock_guard lk(mu_);
    return std::tuple{state_, staging_id_, layer_digest_};
  };
  auto [st, staging, layer] = look();
  std::unique_ptr<storage::BlobReader> r;
  if (st == State::Writing) {
    r = blobs_->read_upload(staging, offset);
    if (!r) std::tie(st, staging, layer) = look();
  }
  if (!r && (st == State::Writing || st == State::Done) && !layer.empty())
    r = blobs_->open(*core::Digest::parse(layer), offset);
  if (st == State::Failed) throw std::runtime_error("squash build failed");
  if (!r) throw std::runtime_error("squash layer is missing from storage");
  return r;
}

std::unique_ptr<storage::BlobReader> Job::open_gzip() {
  std::lock_guard lk(mu_);
  if (!gzip_) return nullptr;
  return blobs_->open(*core::Digest::parse(gzip_->digest), 0);
}

int Job::subscribe(std::function<void()> cb) {
  std::lock_guard lk(mu_);
  subs_[++next_sub_] = std::move(cb);
  return next_sub_;
}
void Job::unsubscribe(int id) {
  std::lock_guard lk(mu_);
  subs_.erase(id);
}
void Job::notify() {
  changes_.fetch_add(1);
  std::lock_guard lk(mu_);
  for (auto& [_, cb] : subs_) cb();
}

// ---- Service ----------------------------------------------------------------

void MemoryBudget::Reservation::release() {
  if (!b_) return;
  {
    std::lock_guard lk(b_->mu_);
    b_->used_ -= n_;
  }
  b_->cv_.notify_all();
  b_ = nullptr;
}

bool MemoryBudget::Reservation::try_grow(uint64_t more) {
  std::lock_guard lk(b_->mu_);
  if (b_->used_ + more > b_->total_) return false;
  b_->used_ += more;
  n_ += more;
  return true;
}

MemoryCharge MemoryBudget::charge_or_give_up(const std::string& what) {
  auto r = std::make_shared<Reservation>(acquire(0, what));
  return [r](uint64_t n) {
    if (!r->try_grow(n)) throw BudgetBusy(n);  // safe from several threads: try_grow takes the budget's lock
  };
}

bool MemoryBudget::try_take(uint64_t bytes) {
  std::lock_guard lk(mu_);
  if (used_ + bytes > total_) return false;
  used_ += bytes;
  return true;
}

void MemoryBudget::give(uint64_t bytes) {
  {
    std::lock_guard lk(mu_);
    used_ -= bytes;
  }
  cv_.notify_all();
}

LimitError MemoryBudget::too_large(uint64_t bytes, const std::string& what) const {
  return LimitError(what + " needs about " + std::to_string((bytes + (1 << 20) - 1) >> 20) +
                    " MiB of memory to squash, more than the whole budget (squash.memory_budget_bytes, " +
                    std::to_string(total_ >> 20) + " MiB)");
}

MemoryBudget::Reservation MemoryBudget::acquire(uint64_t bytes, const std::string& what) {
  if (bytes > total_) throw too_large(bytes, what);
  std::unique_lock lk(mu_);
  uint64_t ticket = next_ticket_++;
  cv_.wait(lk, [&] { return serving_ == ticket && used_ + bytes <= total_; });
  ++serving_;
  used_ += bytes;
  cv_.notify_all();
  return Reservation(this, bytes);
}

uint64_t MemoryBudget::used() const {
  std::lock_guard lk(mu_);
  return used_;
}

namespace {
// Hands the memory of a build's indexes and plan back to the system: glibc
// keeps freed blocks in per-thread arenas otherwise (an RSS of 490 MB stayed
// after a 10^6-entry build; 21 MB after the trim).
void return_memory() { malloc_trim(0); }
}  // namespace

Service::Service(ServiceOptions opts, storage::BlobStore& blobs, meta::MetadataStore& meta)
    : opts_(std::move(opts)), blobs_(blobs), meta_(meta), budget_(opts_.memory_budget_bytes) {
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

std::shared_ptr<Job> Service::acquire(const Image& img) {
  if (auto r = cached(img)) {
    auto j = std::make_shared<Job>();
    j->state_ = Job::State::Done;
    j->layer_size_ = r->layer_size;
    j->available_ = r->layer_size;
    j->layer_digest_ = r->layer_digest;
    j->config_ = r->config;
    if (!r->gz_digest.empty() && blobs_.stat(*core::Digest::parse(r->gz_digest)))
      j->gzip_ = Job::Gzip{r->gz_digest, r->gz_size, r->layer_crc};
    j->blobs_ = &blobs_;
    j->image_ = img;
    meta_.touch_squash(img.key, now_ms());
    core::Metrics::global().add("wharf_squash_cache_hits_total");
    return j;
  }
  std::lock_guard lk(mu_);
  if (auto it = inflight_.find(img.key); it != inflight_.end()) {
    core::Metrics::global().add("wharf_squash_joined_builds_total");
    return it->second;
  }
  // An idle worker takes a build at once; beyond that, queue_max may wait.
  if (queue_.size() >= opts_.queue_max + idle_workers_)
    throw Error(ErrorCode::Unavailable, "too many squash builds running and waiting; retry shortly");
  auto j = std::make_shared<Job>();
  j->blobs_ = &blobs_;
  j->image_ = img;
  inflight_[img.key] = j;
  queue_.push_back(j);
  cv_.notify_one();
  return j;
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
    return std::make_unique<VerifyingReader>(std::move(r), d);
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
  for (const auto& r : meta_.squash_records())
    if (r.manifest_digest == digest) meta_.delete_squash(r.key);
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
    {
      std::lock_guard lk(mu_);
      inflight_.erase(job->image_.key);
    }
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
  const Image& img = job->image_;
  auto& metrics = core::Metrics::global();
  metrics.add("wharf_squash_builds_total");
  std::string staging, staging_state;
  try {
    {
      std::lock_guard lk(job->mu_);
      job->state_ = Job::State::Planning;
    }
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
    {
      std::lock_guard lk(job->mu_);
      job->staging_id_ = staging;
      job->layer_size_ = plan.tar_size;
      job->state_ = Job::State::Writing;
    }
    job->notify();
    core::crash_point("squash-writing");
    int64_t touched = now_s();
    uint64_t told = 0;
    auto published = [&](std::shared_ptr<const storage::Buffer> buf, size_t n) {
      uint64_t end;
      {
        std::lock_guard lk(job->mu_);
        uint64_t at = job->available_.load();
        job->recent_.push_back({at, n, std::move(buf)});
        end = at + n;
        job->available_ = end;
        job->trim_recent();
      }
      if (end - told >= kNotifyStep || end == tar_size) {
        told = end;
        job->notify();
      }
    };
    auto written = [&](uint64_t total) {
      {
        std::lock_guard lk(job->mu_);
        job->written_ = total;
        job->trim_recent();
      }
      core::crash_point("squash-mid-build");
      if (now_s() - touched >= 10) {  // keep the expiry purge away from a long build
        touched = now_s();
        meta_.touch_upload(staging, touched);
      }
    };
    StagingSink sink(blobs_.append_upload(staging, staging_state), published, written);
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
    {
      std::lock_guard lk(job->mu_);
      job->config_ = config;
      job->layer_digest_ = diff_id.str();
    }
    job->notify();
    meta::SquashRecord rec{img.key, img.manifest_digest, diff_id.str(), tar_size, img.layer_dir, config,
                           now_ms(), now_ms(), "", 0, 0};
    // Not under the job's lock: readers keep going (Job::open_at finds the
    // layer under either name) while this waits for the disk.
    meta_.claim_blob_write(diff_id.str());
    blobs_.commit_upload(staging, sink.state(), diff_id);
    core::crash_point("squash-layer-renamed");
    meta_.delete_upload(staging);
    meta_.put_squash(rec);
    {
      std::lock_guard lk(job->mu_);
      job->state_ = Job::State::Done;
      job->recent_.clear();  // readers go on from the committed blob
    }
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
    {
      std::lock_guard lk(job->mu_);
      job->failure_ = err;
      job->state_ = Job::State::Failed;
      job->recent_.clear();
    }
    if (!staging.empty()) {
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
