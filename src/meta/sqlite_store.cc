// SQLite MetadataStore. One connection per thread-in-use from a small pool;
// WAL lets readers run beside the single writer; writes use BEGIN IMMEDIATE
// so two writers never deadlock on a lock upgrade.
#include <sqlite3.h>

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>

#include "meta/sqlite_store.h"
#include "core/clock.h"
#include "core/crash.h"
#include "meta/metadata_store.h"
#include "meta/sqlite_db.h"

namespace wharf::meta {

namespace {

using sqlite::Conn;
using sqlite::Stmt;

const char* kSchema[] = {
    // version 1
    R"SQL(
CREATE TABLE repositories(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created INTEGER NOT NULL);
CREATE TABLE repo_blobs(repo_id INTEGER NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,
                        PRIMARY KEY(repo_id, digest)) WITHOUT ROWID;
CREATE TABLE manifests(repo_id INTEGER NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, body BLOB NOT NULL,
                       artifact_type TEXT NOT NULL, subject TEXT NOT NULL, annotations TEXT NOT NULL,
                       created INTEGER NOT NULL, PRIMARY KEY(repo_id, digest));
CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject <> '';
CREATE INDEX repo_blobs_digest ON repo_blobs(digest);
CREATE TABLE manifest_refs(repo_id INTEGER NOT NULL, manifest TEXT NOT NULL, ref TEXT NOT NULL,
                           PRIMARY KEY(repo_id, manifest, ref)) WITHOUT ROWID;
CREATE INDEX manifest_refs_ref ON manifest_refs(ref);
CREATE TABLE tags(repo_id INTEGER NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, updated INTEGER NOT NULL,
                  PRIMARY KEY(repo_id, name)) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(repo_id, digest);
CREATE TABLE uploads(id TEXT PRIMARY KEY, repo TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);
)SQL",
    // version 2: squash cache
    R"SQL(
CREATE TABLE squash_cache(key TEXT PRIMARY KEY, manifest_digest TEXT NOT NULL, layer_digest TEXT NOT NULL,
                          layer_size INTEGER NOT NULL, layer_dir TEXT NOT NULL, config BLOB NOT NULL,
                          created INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE INDEX squash_cache_manifest ON squash_cache(manifest_digest);
)SQL",
    // version 3: cached gzip form of squashed layers
    R"SQL(
ALTER TABLE squash_cache ADD COLUMN gz_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE squash_cache ADD COLUMN gz_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE squash_cache ADD COLUMN layer_crc INTEGER NOT NULL DEFAULT 0;
)SQL",
    // version 4: persisted per-layer squash indexes
    R"SQL(
CREATE TABLE layer_index(layer_digest TEXT PRIMARY KEY, format INTEGER NOT NULL, index_digest TEXT NOT NULL,
                         entries INTEGER NOT NULL);
)SQL",
    // version 5: the saved inflate states of a layer index (a blob of their own)
    R"SQL(
ALTER TABLE layer_index ADD COLUMN states_digest TEXT NOT NULL DEFAULT '';
)SQL",
    // version 6: upload sessions carry their driver and digest states; blob
    // states arbitrate between a commit and a removal of the same digest
    R"SQL(
ALTER TABLE uploads ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN driver_state BLOB NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN digest_state BLOB NOT NULL DEFAULT '';
CREATE TABLE blob_states(digest TEXT PRIMARY KEY, deleting INTEGER NOT NULL, written INTEGER NOT NULL,
                         marked INTEGER NOT NULL) WITHOUT ROWID;
)SQL",
};

int64_t now_s() { return core::unix_seconds(); }

class SqliteStore : public MetadataStore {
 private:
  template <class F>
  auto with(F&& f) {
    return db_.with(std::forward<F>(f));
  }
  template <class F>
  auto write(F&& f) {
    return db_.write(std::forward<F>(f));
  }
  static int64_t changes(Conn& c) { return sqlite::Db::changes(c); }
  // Makes the blob visible in `repo` (creating the repository). REQUIRES: inside write().
  static void insert_link(Conn& c, std::string_view repo, std::string_view digest, uint64_t size) {
    int64_t id = repo_id(c, repo, true);
    c.prepare("INSERT OR IGNORE INTO repo_blobs(repo_id, digest, size) VALUES(?,?,?)")
        .bind(id)
        .bind(digest)
        .bind(static_cast<int64_t>(size))
        .run();
  }
  // The repository's id; 0 when absent and !create.
  static int64_t repo_id(Conn& c, std::string_view repo, bool create) {
    {
      auto s = c.prepare("SELECT id FROM repositories WHERE name = ?");
      s.bind(repo);
      if (s.step()) return s.i64(0);
    }
    if (!create) return 0;
    c.prepare("INSERT OR IGNORE INTO repositories(name, created) VALUES(?, ?)").bind(repo).bind(now_s()).run();
    auto s = c.prepare("SELECT id FROM repositories WHERE name = ?");
    s.bind(repo);
    s.step();
    return s.i64(0);
  }
 public:
  explicit SqliteStore(std::string path) : db_(std::move(path)) {
    db_.migrate("schema_version", std::vector<const char*>(std::begin(kSchema), std::end(kSchema)));
  }

  void ensure_repository(std::string_view repo) override {
    with([&](Conn& c) { repo_id(c, repo, true); });
  }
  bool repository_exists(std::string_view repo) override {
    return with([&](Conn& c) { return repo_id(c, repo, false) != 0; });
  }
  std::vector<std::string> list_repositories(std::string_view after, size_t limit) override {
    return with([&](Conn& c) {
      std::vector<std::string> out;
      auto s = c.prepare("SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?");
      s.bind(after).bind(static_cast<int64_t>(limit));
      while (s.step()) out.push_back(s.text(0));
      return out;
    });
  }

  void link_blob(std::string_view repo, std::string_view digest, uint64_t size) override {
    write([&](Conn& c) { insert_link(c, repo, digest, size); });
  }
  std::optional<uint64_t> linked_blob_size(std::string_view repo, std::string_view digest) override {
    return with([&](Conn& c) -> std::optional<uint64_t> {
      auto s = c.prepare(
          "SELECT b.size FROM repo_blobs b JOIN repositories r ON r.id = b.repo_id WHERE r.name = ? AND b.digest = ?");
      s.bind(repo).bind(digest);
      if (s.step()) return static_cast<uint64_t>(s.i64(0));
      return std::nullopt;
    });
  }
  void complete_upload(std::string_view upload_id, std::string_view repo, std::string_view digest,
                       uint64_t size) override {
    write([&](Conn& c) {
      insert_link(c, repo, digest, size);
      c.prepare("DELETE FROM uploads WHERE id = ?").bind(upload_id).run();
    });
  }
  std::vector<std::string> repositories_with_blob(std::string_view digest, size_t limit) override {
    return with([&](Conn& c) {
      std::vector<std::string> out;
      auto s = c.prepare(
          "SELECT r.name FROM repo_blobs b JOIN repositories r ON r.id = b.repo_id WHERE b.digest = ? "
          "ORDER BY r.name LIMIT ?");
      s.bind(digest).bind(static_cast<int64_t>(limit));
      while (s.step()) out.push_back(s.text(0));
      return out;
    });
  }
  bool unlink_blob(std::string_view repo, std::string_view digest) override {
    return write([&](Conn& c) {
      int64_t id = repo_id(c, repo, false);
      if (!id) return false;
      c.prepare("DELETE FROM repo_blobs WHERE repo_id = ? AND digest = ?").bind(id).bind(digest).run();
      return changes(c) > 0;
    });
  }

  void put_manifest(std::string_view repo, const ManifestRecord& m, const std::vector<std::string>& refs,
                    const std::vector<std::string>& tags) override {
    write([&](Conn& c) {
      int64_t id = repo_id(c, repo, true);
      c.prepare(
           "INSERT OR IGNORE INTO manifests(repo_id, digest, media_type, body, artifact_type, subject, annotations, "
           "created) VALUES(?,?,?,?,?,?,?,?)")
          .bind(id)
          .bind(m.digest)
          .bind(m.media_type)
          .bind_blob(m.body)
          .bind(m.artifact_type)
          .bind(m.subject)
          .bind(m.annotations)
          .bind(now_s())
          .run();
      for (const auto& r : refs)
        c.prepare("INSERT OR IGNORE INTO manifest_refs(repo_id, manifest, ref) VALUES(?,?,?)")
            .bind(id)
            .bind(m.digest)
            .bind(r)
            .run();
      for (const auto& tag : tags) {
        core::crash_point("before-tag-commit");
        c.prepare("INSERT INTO tags(repo_id, name, digest, updated) VALUES(?,?,?,?) "
                  "ON CONFLICT(repo_id, name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated")
            .bind(id)
            .bind(tag)
            .bind(m.digest)
            .bind(now_s())
            .run();
      }
    });
    core::crash_point("after-tag-commit");
  }
  std::optional<ManifestRecord> get_manifest(std::string_view repo, std::string_view digest) override {
    return with([&](Conn& c) -> std::optional<ManifestRecord> {
      auto s = c.prepare(
          "SELECT m.media_type, m.body, m.artifact_type, m.subject, m.annotations FROM manifests m "
          "JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? AND m.digest = ?");
      s.bind(repo).bind(digest);
      if (!s.step()) return std::nullopt;
      return ManifestRecord{std::string(digest), s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)};
    });
  }
  std::optional<std::string> resolve_tag(std::string_view repo, std::string_view tag) override {
    return with([&](Conn& c) -> std::optional<std::string> {
      auto s = c.prepare(
          "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id WHERE r.name = ? AND t.name = ?");
      s.bind(repo).bind(tag);
      if (!s.step()) return std::nullopt;
      return s.text(0);
    });
  }
  std::vector<std::string> list_tags(std::string_view repo, std::string_view after, size_t limit) override {
    return with([&](Conn& c) {
      std::vector<std::string> out;
      auto s = c.prepare(
          "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id WHERE r.name = ? AND t.name > ? "
          "ORDER BY t.name LIMIT ?");
      s.bind(repo).bind(after).bind(static_cast<int64_t>(limit));
      while (s.step()) out.push_back(s.text(0));
      return out;
    });
  }
  bool delete_tag(std::string_view repo, std::string_view tag) override {
    return write([&](Conn& c) {
      int64_t id = repo_id(c, repo, false);
      if (!id) return false;
      c.prepare("DELETE FROM tags WHERE repo_id = ? AND name = ?").bind(id).bind(tag).run();
      return changes(c) > 0;
    });
  }
  std::vector<TagRecord> tag_records(std::string_view repo) override {
    return with([&](Conn& c) {
      std::vector<TagRecord> out;
      auto s = c.prepare(
          "SELECT t.name, t.digest, t.updated FROM tags t JOIN repositories r ON r.id = t.repo_id WHERE r.name = ? "
          "ORDER BY t.name");
      s.bind(repo);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.i64(2)});
      return out;
    });
  }
  TagSummary tag_summary(std::string_view repo) override {
    return with([&](Conn& c) {
      auto s = c.prepare(
          "SELECT count(*), coalesce(max(t.updated), 0) FROM tags t JOIN repositories r ON r.id = t.repo_id "
          "WHERE r.name = ?");
      s.bind(repo);
      s.step();
      return TagSummary{static_cast<uint64_t>(s.i64(0)), s.i64(1)};
    });
  }
  bool blob_in_use(std::string_view digest) override {
    return with([&](Conn& c) { return in_use(c, digest); });
  }
  static bool in_use(Conn& c, std::string_view digest) {
    {
      auto s = c.prepare(
          "SELECT EXISTS(SELECT 1 FROM repo_blobs WHERE digest = ?1) OR EXISTS(SELECT 1 FROM manifest_refs WHERE ref = ?1) "
          "OR EXISTS(SELECT 1 FROM squash_cache WHERE layer_digest = ?1 OR gz_digest = ?1) "
          "OR EXISTS(SELECT 1 FROM layer_index WHERE index_digest = ?1 OR states_digest = ?1)");
      s.bind(digest);
      s.step();
      return s.i64(0) != 0;
    }
  }
  bool try_claim_blob_write(std::string_view digest, int64_t now, int64_t stale_before) override {
    // Relaxed: a claim lost to a power cut goes with the write it dated, and
    // the reference written after the blob commits it durably (one WAL).
    return db_.write_relaxed([&](Conn& c) {
      {
        auto s = c.prepare("SELECT deleting, marked FROM blob_states WHERE digest = ?");
        s.bind(digest);
        if (s.step() && s.i64(0) != 0 && s.i64(1) >= stale_before) return false;
      }
      c.prepare("INSERT OR REPLACE INTO blob_states(digest, deleting, written, marked) VALUES(?, 0, ?, 0)")
          .bind(digest)
          .bind(now)
          .run();
      return true;
    });
  }
  Mark mark_blob_deleting(std::string_view digest, int64_t cutoff, int64_t now) override {
    return write([&](Conn& c) {
      if (in_use(c, digest)) return Mark::InUse;
      {
        auto s = c.prepare("SELECT deleting, written, marked FROM blob_states WHERE digest = ?");
        s.bind(digest);
        if (s.step()) {
          if (s.i64(0) != 0 && s.i64(2) >= now - kStaleDeleteMark) return Mark::Busy;
          if (s.i64(0) == 0 && s.i64(1) >= cutoff) return Mark::WrittenSince;
        }
      }
      c.prepare("INSERT OR REPLACE INTO blob_states(digest, deleting, written, marked) VALUES(?, 1, 0, ?)")
          .bind(digest)
          .bind(now)
          .run();
      return Mark::Marked;
    });
  }
  void finish_blob_delete(std::string_view digest) override {
    write([&](Conn& c) { c.prepare("DELETE FROM blob_states WHERE digest = ? AND deleting = 1").bind(digest).run(); });
  }
  bool delete_repository(std::string_view repo) override {
    return write([&](Conn& c) {
      int64_t id = repo_id(c, repo, false);
      if (!id) return false;
      for (const char* sql : {"DELETE FROM tags WHERE repo_id = ?", "DELETE FROM manifest_refs WHERE repo_id = ?",
                              "DELETE FROM manifests WHERE repo_id = ?", "DELETE FROM repo_blobs WHERE repo_id = ?",
                              "DELETE FROM repositories WHERE id = ?"})
        c.prepare(sql).bind(id).run();
      return true;
    });
  }
  bool delete_manifest(std::string_view repo, std::string_view digest) override {
    return write([&](Conn& c) {
      int64_t id = repo_id(c, repo, false);
      if (!id) return false;
      c.prepare("DELETE FROM manifests WHERE repo_id = ? AND digest = ?").bind(id).bind(digest).run();
      bool found = changes(c) > 0;
      c.prepare("DELETE FROM tags WHERE repo_id = ? AND digest = ?").bind(id).bind(digest).run();
      c.prepare("DELETE FROM manifest_refs WHERE repo_id = ? AND manifest = ?").bind(id).bind(digest).run();
      return found;
    });
  }
  std::vector<ManifestRecord> referrers(std::string_view repo, std::string_view subject) override {
    return with([&](Conn& c) {
      std::vector<ManifestRecord> out;
      auto s = c.prepare(
          "SELECT m.digest, m.media_type, m.body, m.artifact_type, m.annotations FROM manifests m "
          "JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? AND m.subject = ? ORDER BY m.digest");
      s.bind(repo).bind(subject);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), std::string(subject), s.text(4)});
      return out;
    });
  }

  void create_upload(const UploadRecord& u, Commit commit) override {
    auto insert = [&](Conn& c) {
      c.prepare(
           "INSERT INTO uploads(id, repo, created, updated, size, driver_state, digest_state) VALUES(?,?,?,?,?,?,?)")
          .bind(u.id)
          .bind(u.repo)
          .bind(u.created)
          .bind(u.updated)
          .bind(static_cast<int64_t>(u.size))
          .bind_blob(u.driver_state)
          .bind_blob(u.digest_state)
          .run();
    };
    if (commit == Commit::Relaxed) {
      db_.write_relaxed(insert);
    } else {
      write(insert);
    }
  }
  std::optional<UploadRecord> get_upload(std::string_view id) override {
    return with([&](Conn& c) -> std::optional<UploadRecord> {
      auto s = c.prepare("SELECT repo, created, updated, size, driver_state, digest_state FROM uploads WHERE id = ?");
      s.bind(id);
      if (!s.step()) return std::nullopt;
      return UploadRecord{std::string(id), s.text(0), s.i64(1), s.i64(2),
                          static_cast<uint64_t>(s.i64(3)), s.text(4), s.text(5)};
    });
  }
  void touch_upload(std::string_view id, int64_t now) override {
    write([&](Conn& c) { c.prepare("UPDATE uploads SET updated = ? WHERE id = ?").bind(now).bind(id).run(); });
  }
  void save_upload_progress(const UploadRecord& u) override {
    db_.write_relaxed([&](Conn& c) {
      c.prepare("UPDATE uploads SET updated = ?, size = ?, driver_state = ?, digest_state = ? WHERE id = ?")
          .bind(u.updated)
          .bind(static_cast<int64_t>(u.size))
          .bind_blob(u.driver_state)
          .bind_blob(u.digest_state)
          .bind(u.id)
          .run();
    });
  }
  void delete_upload(std::string_view id) override {
    write([&](Conn& c) { c.prepare("DELETE FROM uploads WHERE id = ?").bind(id).run(); });
  }
  std::vector<UploadRecord> uploads_idle_since(int64_t before) override {
    return with([&](Conn& c) {
      std::vector<UploadRecord> out;
      auto s = c.prepare(
          "SELECT id, repo, created, updated, size, driver_state, digest_state FROM uploads WHERE updated < ?");
      s.bind(before);
      while (s.step())
        out.push_back({s.text(0), s.text(1), s.i64(2), s.i64(3), static_cast<uint64_t>(s.i64(4)), s.text(5), s.text(6)});
      return out;
    });
  }
  std::optional<SquashRecord> get_squash(std::string_view key) override {
    return with([&](Conn& c) -> std::optional<SquashRecord> {
      auto s = c.prepare(
          "SELECT manifest_digest, layer_digest, layer_size, layer_dir, config, created, last_used, gz_digest, "
          "gz_size, layer_crc FROM squash_cache WHERE key = ?");
      s.bind(key);
      if (!s.step()) return std::nullopt;
      return SquashRecord{std::string(key), s.text(0), s.text(1), static_cast<uint64_t>(s.i64(2)),
                          s.text(3),        s.text(4), s.i64(5),  s.i64(6),
                          s.text(7),        static_cast<uint64_t>(s.i64(8)), static_cast<uint32_t>(s.i64(9))};
    });
  }
  void put_squash(const SquashRecord& r) override {
    write([&](Conn& c) {
      c.prepare("INSERT OR REPLACE INTO squash_cache(key, manifest_digest, layer_digest, layer_size, layer_dir, "
                "config, created, last_used) VALUES(?,?,?,?,?,?,?,?)")
          .bind(r.key)
          .bind(r.manifest_digest)
          .bind(r.layer_digest)
          .bind(static_cast<int64_t>(r.layer_size))
          .bind(r.layer_dir)
          .bind_blob(r.config)
          .bind(r.created)
          .bind(r.last_used)
          .run();
    });
  }
  void touch_squash(std::string_view key, int64_t now) override {
    write([&](Conn& c) { c.prepare("UPDATE squash_cache SET last_used = ? WHERE key = ?").bind(now).bind(key).run(); });
  }
  bool delete_squash(std::string_view key) override {
    return write([&](Conn& c) {
      c.prepare("DELETE FROM squash_cache WHERE key = ?").bind(key).run();
      return changes(c) > 0;
    });
  }
  void set_squash_gzip(std::string_view key, std::string_view gz_digest, uint64_t gz_size,
                       uint32_t layer_crc) override {
    write([&](Conn& c) {
      c.prepare("UPDATE squash_cache SET gz_digest = ?, gz_size = ?, layer_crc = ? WHERE key = ?")
          .bind(gz_digest)
          .bind(static_cast<int64_t>(gz_size))
          .bind(static_cast<int64_t>(layer_crc))
          .bind(key)
          .run();
    });
  }
  std::vector<SquashRecord> squash_records() override {
    return with([&](Conn& c) {
      std::vector<SquashRecord> out;
      auto s = c.prepare(
          "SELECT key, manifest_digest, layer_digest, layer_size, layer_dir, created, last_used, gz_digest, gz_size, "
          "layer_crc FROM squash_cache ORDER BY last_used, key");
      while (s.step())
        out.push_back({s.text(0), s.text(1), s.text(2), static_cast<uint64_t>(s.i64(3)), s.text(4), "", s.i64(5),
                       s.i64(6), s.text(7), static_cast<uint64_t>(s.i64(8)), static_cast<uint32_t>(s.i64(9))});
      return out;
    });
  }
  std::optional<LayerIndexRecord> get_layer_index(std::string_view layer_digest) override {
    return with([&](Conn& c) -> std::optional<LayerIndexRecord> {
      auto s = c.prepare("SELECT format, index_digest, entries, states_digest FROM layer_index WHERE layer_digest = ?");
      s.bind(layer_digest);
      if (!s.step()) return std::nullopt;
      return LayerIndexRecord{std::string(layer_digest), static_cast<uint32_t>(s.i64(0)), s.text(1),
                              static_cast<uint64_t>(s.i64(2)), s.text(3)};
    });
  }
  void delete_layer_index(std::string_view layer_digest) override {
    write([&](Conn& c) { c.prepare("DELETE FROM layer_index WHERE layer_digest = ?").bind(layer_digest).run(); });
  }
  std::vector<std::string> indexed_layers() override {
    return with([&](Conn& c) {
      std::vector<std::string> out;
      auto s = c.prepare("SELECT layer_digest FROM layer_index ORDER BY layer_digest");
      while (s.step()) out.push_back(s.text(0));
      return out;
    });
  }
  void put_layer_index(const LayerIndexRecord& r) override {
    write([&](Conn& c) {
      c.prepare(
           "INSERT OR REPLACE INTO layer_index(layer_digest, format, index_digest, entries, states_digest) "
           "VALUES(?,?,?,?,?)")
          .bind(r.layer_digest)
          .bind(static_cast<int64_t>(r.format))
          .bind(r.index_digest)
          .bind(static_cast<int64_t>(r.entries))
          .bind(r.states_digest)
          .run();
    });
  }
  void probe() override {
    with([&](Conn& c) {
      auto s = c.prepare("SELECT count(*) FROM repositories");
      s.step();
    });
  }

 private:
  sqlite::Db db_;
};

}  // namespace

std::unique_ptr<MetadataStore> make_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

}  // namespace wharf::meta
