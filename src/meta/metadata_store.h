// meta/metadata_store.h — everything the registry knows besides blob bytes:
// repositories, which blobs each repository may see, manifests, tags,
// referrers, upload sessions, squash cache records and persisted layer
// indexes. Accounts and permissions are account_store.h's.
//
// Contracts every backend keeps (checked by the shared metadata test suite):
// - Each method is one transaction: put_manifest stores the manifest, its
//   references and the tag move atomically, and once it returns the change is
//   durable and visible to every process sharing the store.
// - Safe to call concurrently from several threads and several processes.
// - Repository names are passed already validated; digests as canonical strings.
// Methods throw std::runtime_error when the database fails.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::meta {

struct ManifestRecord {
  std::string digest;
  std::string media_type;
  std::string body;            // the bytes as pushed
  std::string artifact_type;   // for the referrers API: artifactType, else config.mediaType
  std::string subject;         // digest of the subject manifest, or empty
  std::string annotations;     // JSON object text, or empty
};

struct TagRecord {
  std::string name;
  std::string digest;
  int64_t updated = 0;  // unix seconds of the last push that moved it
};

// An upload session. Everything a process needs to continue it: the
// BlobStore's state of the staged bytes and the registry's digest state.
struct UploadRecord {
  std::string id;
  std::string repo;
  int64_t created = 0;  // unix seconds
  int64_t updated = 0;
  uint64_t size = 0;          // bytes the session holds
  std::string driver_state;   // storage::BlobStore's state of the staged upload
  std::string digest_state;   // core::Hasher::save() over those bytes; empty: none saved
};

// A committed squash cache entry (see squash/service.h).
struct SquashRecord {
  std::string key;              // "v<format>:<image manifest digest>"
  std::string manifest_digest;  // the image manifest that was squashed
  std::string layer_digest;     // sha256 of the squashed layer.tar (its diff_id); a blob in the BlobStore
  uint64_t layer_size = 0;
  std::string layer_dir;        // directory of layer.tar in the archive
  std::string config;           // the squashed image's config JSON
  int64_t created = 0;    // unix milliseconds
  int64_t last_used = 0;  // unix milliseconds
  // The layer's cached gzip piece (raw deflate, sync-flushed), once made.
  std::string gz_digest;
  uint64_t gz_size = 0;
  uint32_t layer_crc = 0;  // CRC-32 of layer.tar
};

// Where a layer's persisted squash index is (see squash/index_codec.h).
struct LayerIndexRecord {
  std::string layer_digest;
  uint32_t format = 0;
  std::string index_digest;  // a blob in the BlobStore
  uint64_t entries = 0;
  std::string states_digest;  // its saved inflate states, a blob too ("" when none)
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  virtual void ensure_repository(std::string_view repo) = 0;
  virtual bool repository_exists(std::string_view repo) = 0;
  // Repository names in byte order, strictly after `after`, at most `limit`.
  virtual std::vector<std::string> list_repositories(std::string_view after, size_t limit) = 0;

  // Makes blob `digest` (of `size` bytes) visible in `repo`, creating the repository.
  virtual void link_blob(std::string_view repo, std::string_view digest, uint64_t size) = 0;
  // The blob's size when it is visible in `repo`.
  virtual std::optional<uint64_t> linked_blob_size(std::string_view repo, std::string_view digest) = 0;
  // Completes an upload session: links the blob into `repo` and removes the
  // session, in one transaction.
  virtual void complete_upload(std::string_view upload_id, std::string_view repo, std::string_view digest,
                               uint64_t size) = 0;
  // Repositories in which blob `digest` is visible, at most `limit`.
  virtual std::vector<std::string> repositories_with_blob(std::string_view digest, size_t limit) = 0;
  // True when the blob was visible in `repo` (and is not any more).
  virtual bool unlink_blob(std::string_view repo, std::string_view digest) = 0;

  // Stores manifest `m` in `repo` with the digests it references (blobs and
  // child manifests) and points every tag in `tags` at it (none: untagged),
  // all in one transaction.
  virtual void put_manifest(std::string_view repo, const ManifestRecord& m, const std::vector<std::string>& refs,
                            const std::vector<std::string>& tags) = 0;
  virtual std::optional<ManifestRecord> get_manifest(std::string_view repo, std::string_view digest) = 0;
  virtual std::optional<std::string> resolve_tag(std::string_view repo, std::string_view tag) = 0;
  // Tags in byte order, strictly after `after`, at most `limit`.
  virtual std::vector<std::string> list_tags(std::string_view repo, std::string_view after, size_t limit) = 0;
  virtual bool delete_tag(std::string_view repo, std::string_view tag) = 0;
  // Every tag of `repo` with its manifest digest and update time, by name.
  virtual std::vector<TagRecord> tag_records(std::string_view repo) = 0;
  // How many tags `repo` has and when one last moved (unix seconds, 0: none).
  struct TagSummary {
    uint64_t count = 0;
    int64_t last_updated = 0;
  };
  // The summaries of every repository named `first` to `last` (inclusive,
  // byte order) that has a tag, in one round trip: for lists of repositories.
  virtual std::map<std::string, TagSummary> tag_summaries(std::string_view first, std::string_view last) = 0;
  TagSummary tag_summary(std::string_view repo) {
    auto m = tag_summaries(repo, repo);
    return m.empty() ? TagSummary{} : m.begin()->second;
  }
  // Removes the repository with its tags, manifests and blob links (the
  // bytes stay in the BlobStore for garbage collection). True when it existed.
  virtual bool delete_repository(std::string_view repo) = 0;
  // Deletes the manifest and every tag pointing at it.
  virtual bool delete_manifest(std::string_view repo, std::string_view digest) = 0;
  // Manifests in `repo` whose subject is `subject`, ordered by digest.
  virtual std::vector<ManifestRecord> referrers(std::string_view repo, std::string_view subject) = 0;

  // Relaxed: committed without waiting for the disk (durable across a process
  // crash, not a power cut) — for a client's session, which the client simply
  // opens again. Durable: for rows that guard files someone must clean up.
  enum class Commit { Durable, Relaxed };
  virtual void create_upload(const UploadRecord& u, Commit commit) = 0;
  virtual std::optional<UploadRecord> get_upload(std::string_view id) = 0;
  virtual void touch_upload(std::string_view id, int64_t now) = 0;
  // Stores what a request appended: `u`'s size, driver and digest states,
  // with `u.updated` as its last use (found by `u.id`; `repo` and `created`
  // stay). Durable across a process crash, like Commit::Relaxed.
  virtual void save_upload_progress(const UploadRecord& u) = 0;
  virtual void delete_upload(std::string_view id) = 0;
  // Sessions not touched since `before` (unix seconds).
  virtual std::vector<UploadRecord> uploads_idle_since(int64_t before) = 0;

  // Squash cache records.
  virtual std::optional<SquashRecord> get_squash(std::string_view key) = 0;
  virtual void put_squash(const SquashRecord& r) = 0;
  virtual void touch_squash(std::string_view key, int64_t now) = 0;
  virtual bool delete_squash(std::string_view key) = 0;
  virtual void set_squash_gzip(std::string_view key, std::string_view gz_digest, uint64_t gz_size,
                               uint32_t layer_crc) = 0;
  // Every record, least recently used first (for eviction and listing); `config` is left empty.
  virtual std::vector<SquashRecord> squash_records() = 0;
  // Deletes the records of image manifest `manifest_digest` (every format
  // and platform); returns how many there were. One indexed statement.
  virtual size_t delete_squash_of_manifest(std::string_view manifest_digest) = 0;
  // The bytes the squash cache holds: each distinct squashed layer and gzip
  // piece once, however many records share it (one aggregate query).
  virtual uint64_t squash_cache_bytes() = 0;

  virtual std::optional<LayerIndexRecord> get_layer_index(std::string_view layer_digest) = 0;
  virtual void put_layer_index(const LayerIndexRecord& r) = 0;
  // Forgets a layer's index (its blobs become collectable); absent is fine.
  virtual void delete_layer_index(std::string_view layer_digest) = 0;
  // The layers that have an index (for gc: indexes of layers that are gone).
  virtual std::vector<std::string> indexed_layers() = 0;

  // Whether blob `digest` is referenced by anything: linked into a
  // repository, referenced by a stored manifest, a squash cache entry (layer
  // or gzip piece) or a persisted layer index (for wharf gc).
  virtual bool blob_in_use(std::string_view digest) = 0;

  // Blob states: what keeps a removal (wharf gc, squash cache eviction) from
  // deleting bytes a commit of the same digest is writing, whatever the
  // BlobStore driver:
  //   a writer: claim_blob_write(d), then BlobStore::commit_upload / put,
  //             then the reference (a link, a record);
  //   a remover: mark_blob_deleting(d, cutoff, now), and only when it says
  //             Marked BlobStore::remove(d), then finish_blob_delete(d)
  //             (remove_blob_if_unused does the three).
  // A claim dates the blob's last write now, so a mark after it fails (the
  // write is not before the cutoff); a claim after a mark waits until the
  // remover finished. A mark is refused while the blob is in use.
  //
  // True when claimed: the blob's last write is now `now`. False while a
  // remover holds a mark made at or after `stale_before` (unix seconds).
  virtual bool try_claim_blob_write(std::string_view digest, int64_t now, int64_t stale_before) = 0;
  // Marks the blob for removal when nothing uses it (blob_in_use) and it was
  // last written before `cutoff` (or never claimed: the caller judged the
  // stored blob's own time), atomically.
  enum class Mark { Marked, InUse, WrittenSince, Busy /* another remover holds a mark */ };
  virtual Mark mark_blob_deleting(std::string_view digest, int64_t cutoff, int64_t now) = 0;
  // The remover is done: the blob is gone and so is its state.
  virtual void finish_blob_delete(std::string_view digest) = 0;
  // The remover's side in one call: marks the blob (cutoff as above, now the
  // current time), and only when that says Marked runs `remove` (the
  // BlobStore::remove of the bytes), then finishes. Returns the mark's answer.
  Mark remove_blob_if_unused(std::string_view digest, int64_t cutoff, const std::function<void()>& remove);
  // Claims the write, waiting while a remover holds a mark; a mark older
  // than kStaleDeleteMark seconds is a remover that died and is taken over.
  // Throws std::runtime_error when the store fails.
  void claim_blob_write(std::string_view digest);
  static constexpr int64_t kStaleDeleteMark = 60;

  // Cheap round trip for /health/endtoend. Throws on failure.
  virtual void probe() = 0;

  // ---- exclusion across processes ------------------------------------------
  // A hold on `name` for as long as the returned object lives, exclusive
  // among the processes sharing this store; nullptr when another process
  // holds it. A hold ends with its holder's process (PostgreSQL: a session
  // advisory lock on a connection of the store's own, dropped by the server
  // with the dead process's connection), so a retry elsewhere is not refused
  // for long. lost() is true once that can no longer be promised (the lock's
  // connection broke): a holder checks it before it writes what the hold
  // protects. Holds are not exclusive within one process: callers exclude
  // their own requests themselves. The embedded store serves one process:
  // its holds exclude nothing.
  class Hold {
   public:
    virtual ~Hold() = default;
    virtual bool lost() { return false; }
  };
  virtual std::unique_ptr<Hold> try_hold(std::string_view name) {
    (void)name;
    return std::make_unique<Hold>();
  }

  // ---- coordination of replicas ---------------------------------------------
  // Calls fn(repo), on a thread of the store's, soon after any process
  // sharing the store changed a tag or manifest of `repo` (this one
  // included); fn("") when changes may have been missed (the watch lost its
  // connection: everything may have changed). An empty fn stops the watch
  // (returns once fn can no longer run). One watch per store. PostgreSQL:
  // LISTEN/NOTIFY (a notification per write, sent after its commit, so a
  // process's cache is dropped within milliseconds); the embedded store
  // never calls it (one process: the cached wrapper drops on its own writes).
  virtual void watch_changes(std::function<void(std::string_view repo)> fn) { (void)fn; }

  // Periodic work done once among the processes sharing the store: true when
  // no process ran `name` in the last `interval_ms` (by the store's clock, so
  // the replicas' clocks need not agree), and this call now counts as its
  // run, by `replica`. The embedded store serves one process: always true.
  virtual bool claim_periodic(std::string_view name, int64_t interval_ms, std::string_view replica) {
    (void)name, (void)interval_ms, (void)replica;
    return true;
  }
  // Where the squash build of cache key `key` runs: the holder of the hold
  // "squash:<key>" records its advertised address after taking it, and
  // clears it (only its own record) when the build ends. A record outlives a
  // holder that died: readers trust it only while the hold is taken. The
  // embedded store records nothing (one process builds everything itself).
  virtual void set_squash_builder(std::string_view key, std::string_view replica, std::string_view address) {
    (void)key, (void)replica, (void)address;
  }
  virtual std::optional<std::string> squash_builder(std::string_view key) {
    (void)key;
    return std::nullopt;
  }
  virtual void clear_squash_builder(std::string_view key, std::string_view replica) { (void)key, (void)replica; }
};

// Wraps `inner` with an in-process cache of tag resolutions and manifests.
// Writes through the wrapper invalidate at once; changes made by other
// processes (a tag moved, a manifest deleted) are seen within `ttl_ms`.
std::unique_ptr<MetadataStore> make_cached_store(std::unique_ptr<MetadataStore> inner, int ttl_ms);

}  // namespace wharf::meta
