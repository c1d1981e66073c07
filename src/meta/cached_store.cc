// In-process cache of tag resolutions and manifests in front of a
// MetadataStore, so a hot manifest GET costs no database round trip.
// Only hits are cached; every entry expires after ttl_ms; writes through this
// wrapper drop the entries they affect before returning, and the inner
// store's change notifications (other replicas' writes) drop theirs. A read that began
// before such a drop never caches what it read (a generation count, bumped
// with every drop): it may have read the state the write replaced.
#include <chrono>
#include <mutex>
#include <unordered_map>

#include "meta/metadata_store.h"

namespace wharf::meta {

namespace {

using Clock = std::chrono::steady_clock;

class CachedStore : public MetadataStore {
 public:
  CachedStore(std::unique_ptr<MetadataStore> inner, int ttl_ms) : in_(std::move(inner)), ttl_(ttl_ms) {
    // Other processes' writes (PostgreSQL: LISTEN/NOTIFY) drop what they
    // affect at once; the TTL stays the bound when a notification is lost.
    if (ttl_.count() > 0)
      in_->watch_changes([this](std::string_view repo) {
        std::lock_guard lk(mu_);
        ++gen_;
        if (repo.empty()) return clear_locked();
        std::string prefix = key(repo, "");
        std::erase_if(tags_, [&](const auto& kv) { return kv.first.starts_with(prefix); });
        std::erase_if(manifests_, [&](const auto& kv) { return kv.first.starts_with(prefix); });
      });
  }
  ~CachedStore() override { in_->watch_changes({}); }  // before the members the watch touches go
  void watch_changes(std::function<void(std::string_view repo)> fn) override {
    (void)fn;  // the wrapper's own watch is the store's one watch
  }

  void ensure_repository(std::string_view r) override { in_->ensure_repository(r); }
  bool repository_exists(std::string_view r) override { return in_->repository_exists(r); }
  std::vector<std::string> list_repositories(std::string_view a, size_t l) override {
    return in_->list_repositories(a, l);
  }
  void link_blob(std::string_view r, std::string_view d, uint64_t s) override { in_->link_blob(r, d, s); }
  std::optional<uint64_t> linked_blob_size(std::string_view r, std::string_view d) override {
    return in_->linked_blob_size(r, d);
  }
  void complete_upload(std::string_view u, std::string_view r, std::string_view d, uint64_t s) override {
    in_->complete_upload(u, r, d, s);
  }
  std::vector<std::string> repositories_with_blob(std::string_view d, size_t l) override {
    return in_->repositories_with_blob(d, l);
  }
  bool unlink_blob(std::string_view r, std::string_view d) override { return in_->unlink_blob(r, d); }

  void put_manifest(std::string_view repo, const ManifestRecord& m, const std::vector<std::string>& refs,
                    const std::vector<std::string>& tags) override {
    in_->put_manifest(repo, m, refs, tags);
    for (const auto& t : tags) drop_tag(repo, t);
  }
  std::optional<ManifestRecord> get_manifest(std::string_view repo, std::string_view digest) override {
    auto k = key(repo, digest);
    uint64_t gen;
    {
      std::lock_guard lk(mu_);
      auto it = manifests_.find(k);
      if (it != manifests_.end() && Clock::now() < it->second.expires) return it->second.value;
      gen = gen_;
    }
    auto m = in_->get_manifest(repo, digest);
    if (m && ttl_.count() > 0) {
      std::lock_guard lk(mu_);
      if (gen != gen_) return m;
      if (bytes_ > kMaxBytes) clear_locked();
      bytes_ += m->body.size() + k.size();
      manifests_[k] = {*m, Clock::now() + ttl_};
    }
    return m;
  }
  std::optional<std::string> resolve_tag(std::string_view repo, std::string_view tag) override {
    auto k = key(repo, tag);
    uint64_t gen;
    {
      std::lock_guard lk(mu_);
      auto it = tags_.find(k);
      if (it != tags_.end() && Clock::now() < it->second.expires) return it->second.value;
      gen = gen_;
    }
    auto d = in_->resolve_tag(repo, tag);
    if (d && ttl_.count() > 0) {
      std::lock_guard lk(mu_);
      if (gen != gen_) return d;
      if (bytes_ > kMaxBytes) clear_locked();
      bytes_ += d->size() + k.size();
      tags_[k] = {*d, Clock::now() + ttl_};
    }
    return d;
  }
  std::vector<std::string> list_tags(std::string_view r, std::string_view a, size_t l) override {
    return in_->list_tags(r, a, l);
  }
  bool delete_tag(std::string_view repo, std::string_view tag) override {
    bool r = in_->delete_tag(repo, tag);
    drop_tag(repo, tag);
    return r;
  }
  std::vector<TagRecord> tag_records(std::string_view r) override { return in_->tag_records(r); }
  bool blob_in_use(std::string_view d) override { return in_->blob_in_use(d); }
  bool try_claim_blob_write(std::string_view d, int64_t now, int64_t stale_before) override {
    return in_->try_claim_blob_write(d, now, stale_before);
  }
  Mark mark_blob_deleting(std::string_view d, int64_t cutoff, int64_t now) override {
    return in_->mark_blob_deleting(d, cutoff, now);
  }
  void finish_blob_delete(std::string_view d) override { in_->finish_blob_delete(d); }
  std::map<std::string, TagSummary> tag_summaries(std::string_view first, std::string_view last) override {
    return in_->tag_summaries(first, last);
  }
  bool delete_repository(std::string_view repo) override {
    bool r = in_->delete_repository(repo);
    std::lock_guard lk(mu_);
    ++gen_;
    std::string prefix = key(repo, "");
    std::erase_if(tags_, [&](const auto& kv) { return kv.first.starts_with(prefix); });
    std::erase_if(manifests_, [&](const auto& kv) { return kv.first.starts_with(prefix); });
    return r;
  }
  bool delete_manifest(std::string_view repo, std::string_view digest) override {
    bool r = in_->delete_manifest(repo, digest);
    std::lock_guard lk(mu_);
    ++gen_;
    manifests_.erase(key(repo, digest));
    // Tags pointing at it were deleted too; drop every cached tag of the repo that resolved to it.
    for (auto it = tags_.begin(); it != tags_.end();) {
      if (it->second.value == digest && it->first.starts_with(key(repo, "")))
        it = tags_.erase(it);
      else
        ++it;
    }
    return r;
  }
  std::vector<ManifestRecord> referrers(std::string_view r, std::string_view s) override {
    return in_->referrers(r, s);
  }
  void create_upload(const UploadRecord& u, Commit c) override { in_->create_upload(u, c); }
  std::optional<UploadRecord> get_upload(std::string_view id) override { return in_->get_upload(id); }
  void touch_upload(std::string_view id, int64_t now) override { in_->touch_upload(id, now); }
  void save_upload_progress(const UploadRecord& u) override { in_->save_upload_progress(u); }
  void delete_upload(std::string_view id) override { in_->delete_upload(id); }
  std::vector<UploadRecord> uploads_idle_since(int64_t b) override { return in_->uploads_idle_since(b); }
  std::optional<SquashRecord> get_squash(std::string_view k) override { return in_->get_squash(k); }
  void put_squash(const SquashRecord& r) override { in_->put_squash(r); }
  void touch_squash(std::string_view k, int64_t t) override { in_->touch_squash(k, t); }
  bool delete_squash(std::string_view k) override { return in_->delete_squash(k); }
  void set_squash_gzip(std::string_view k, std::string_view d, uint64_t s, uint32_t c) override {
    in_->set_squash_gzip(k, d, s, c);
  }
  std::vector<SquashRecord> squash_records() override { return in_->squash_records(); }
  size_t delete_squash_of_manifest(std::string_view d) override { return in_->delete_squash_of_manifest(d); }
  uint64_t squash_cache_bytes() override { return in_->squash_cache_bytes(); }
  std::optional<LayerIndexRecord> get_layer_index(std::string_view d) override { return in_->get_layer_index(d); }
  void put_layer_index(const LayerIndexRecord& r) override { in_->put_layer_index(r); }
  void delete_layer_index(std::string_view d) override { in_->delete_layer_index(d); }
  std::vector<std::string> indexed_layers() override { return in_->indexed_layers(); }
  void probe() override { in_->probe(); }
  std::unique_ptr<Hold> try_hold(std::string_view name) override { return in_->try_hold(name); }
  bool claim_periodic(std::string_view name, int64_t interval_ms, std::string_view replica) override {
    return in_->claim_periodic(name, interval_ms, replica);
  }
  void set_squash_builder(std::string_view key, std::string_view replica, std::string_view address) override {
    in_->set_squash_builder(key, replica, address);
  }
  std::optional<std::string> squash_builder(std::string_view key) override { return in_->squash_builder(key); }
  void clear_squash_builder(std::string_view key, std::string_view replica) override {
    in_->clear_squash_builder(key, replica);
  }

 private:
  template <class T>
  struct Entry {
    T value;
    Clock::time_point expires;
  };
  static constexpr size_t kMaxBytes = 64 << 20;

  static std::string key(std::string_view repo, std::string_view x) {
    std::string k(repo);
    k += '\0';
    k += x;
    return k;
  }
  void drop_tag(std::string_view repo, std::string_view tag) {
    std::lock_guard lk(mu_);
    ++gen_;
    tags_.erase(key(repo, tag));
  }
  void clear_locked() {
    tags_.clear();
    manifests_.clear();
    bytes_ = 0;
  }

  std::unique_ptr<MetadataStore> in_;
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry<std::string>> tags_;
  std::unordered_map<std::string, Entry<ManifestRecord>> manifests_;
  size_t bytes_ = 0;
  uint64_t gen_ = 0;  // bumped by every drop (under mu_)
};

}  // namespace

std::unique_ptr<MetadataStore> make_cached_store(std::unique_ptr<MetadataStore> inner, int ttl_ms) {
  return std::make_unique<CachedStore>(std::move(inner), ttl_ms);
}

}  // namespace wharf::meta
