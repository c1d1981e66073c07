// meta/sql_metadata_store.h — the MetadataStore both SQL backends share: one
// set of tables and queries, written in the SQL that SQLite (3.35 or later)
// and PostgreSQL both accept (ON CONFLICT upserts, RETURNING, ?N
// parameters), over a toolkit type `Db` with one interface: sqlite_db.h's
// sqlite::Db or pg_db.h's pg::Db. What differs — the schema (types,
// collations) and how a transaction is made safe (SQLite's single writer,
// PostgreSQL's SERIALIZABLE with reruns) — stays with the backend.
// Internal to meta/: the factories are in sqlite_store.h and pg_store.h.
//
// Db provides: Conn, Stmt; with(f) (autocommit; reads), write(f) and
// write_relaxed(f) (one transaction, f rerun when the backend retries);
// Conn::prepare(sql) -> Stmt with bind/bind_blob/step/run/text/i64; and
// Conn::last_changes(); Db::Connection and Db::Statement name Conn and Stmt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/crash.h"
#include "meta/metadata_store.h"

namespace wharf::meta {

template <class Db>
class SqlMetadataStore : public MetadataStore {
 private:
  using Conn = typename Db::Connection;
  using Stmt = typename Db::Statement;
  template <class F>
  auto with(F&& f) {
    return db_.with(std::forward<F>(f));
  }
  template <class F>
  auto write(F&& f) {
    return db_.write(std::forward<F>(f));
  }
  static int64_t changes(Conn& c) { return c.last_changes(); }
  // Makes the blob visible in `repo` (creating the repository). REQUIRES:
  // inside write().
  static void insert_link(Conn& c, std::string_view repo, std::string_view digest, uint64_t size) {
    int64_t id = repo_id(c, repo, true);
    c.prepare(
         "INSERT INTO repo_blobs(repo_id, digest, size) VALUES(?,?,?) ON "
         "CONFLICT DO NOTHING")
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
    c.prepare(
         "INSERT INTO repositories(name, created) VALUES(?, ?) ON "
         "CONFLICT DO NOTHING")
        .bind(repo)
        .bind(core::unix_seconds())
        .run();
    auto s = c.prepare("SELECT id FROM repositories WHERE name = ?");
    s.bind(repo);
    s.step();
    return s.i64(0);
  }

 public:
  // Opens the toolkit's database with `args`; the caller migrates db().
  template <class... A>
  explicit SqlMetadataStore(A&&... args) : db_(std::forward<A>(args)...) {}
  Db& db() { return db_; }

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
          "SELECT b.size FROM repo_blobs b JOIN repositories r ON "
          "r.id = b.repo_id WHERE r.name = ? AND b.digest = ?");
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
          "SELECT r.name FROM repo_blobs b JOIN repositories r "
          "ON r.id = b.repo_id WHERE b.digest = ? "
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
           "INSERT INTO manifests(repo_id, digest, media_type, body, "
           "artifact_type, subject, annotations, "
           "created) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")
          .bind(id)
          .bind(m.digest)
          .bind(m.media_type)
          .bind_blob(m.body)
          .bind(m.artifact_type)
          .bind(m.subject)
          .bind(m.annotations)
          .bind(core::unix_seconds())
          .run();
      for (const auto& r : refs)
        c.prepare(
             "INSERT INTO manifest_refs(repo_id, manifest, ref) "
             "VALUES(?,?,?) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(m.digest)
            .bind(r)
            .run();
      for (const auto& tag : tags) {
        core::crash_point("before-tag-commit");
        c.prepare(
             "INSERT INTO tags(repo_id, name, digest, updated) VALUES(?,?,?,?) "
             "ON CONFLICT(repo_id, name) DO UPDATE SET digest = "
             "excluded.digest, updated = excluded.updated")
            .bind(id)
            .bind(tag)
            .bind(m.digest)
            .bind(core::unix_seconds())
            .run();
      }
    });
    core::crash_point("after-tag-commit");
  }
  std::optional<ManifestRecord> get_manifest(std::string_view repo, std::string_view digest) override {
    return with([&](Conn& c) -> std::optional<ManifestRecord> {
      auto s = c.prepare(
          "SELECT m.media_type, m.body, m.artifact_type, "
          "m.subject, m.annotations FROM manifests m "
          "JOIN repositories r ON r.id = m.repo_id WHERE r.name "
          "= ? AND m.digest = ?");
      s.bind(repo).bind(digest);
      if (!s.step()) return std::nullopt;
      return ManifestRecord{std::string(digest), s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)};
    });
  }
  std::optional<std::string> resolve_tag(std::string_view repo, std::string_view tag) override {
    return with([&](Conn& c) -> std::optional<std::string> {
      auto s = c.prepare(
          "SELECT t.digest FROM tags t JOIN repositories r ON "
          "r.id = t.repo_id WHERE r.name = ? AND t.name = ?");
      s.bind(repo).bind(tag);
      if (!s.step()) return std::nullopt;
      return s.text(0);
    });
  }
  std::vector<std::string> list_tags(std::string_view repo, std::string_view after, size_t limit) override {
    return with([&](Conn& c) {
      std::vector<std::string> out;
      auto s = c.prepare(
          "SELECT t.name FROM tags t JOIN repositories r ON "
          "r.id = t.repo_id WHERE r.name = ? AND t.name > ? "
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
          "SELECT t.name, t.digest, t.updated FROM tags t JOIN "
          "repositories r ON r.id = t.repo_id WHERE r.name = ? "
          "ORDER BY t.name");
      s.bind(repo);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.i64(2)});
      return out;
    });
  }
  std::map<std::string, TagSummary> tag_summaries(std::string_view first, std::string_view last) override {
    return with([&](Conn& c) {
      std::map<std::string, TagSummary> out;
      auto s = c.prepare(
          "SELECT r.name, count(*), max(t.updated) FROM tags t JOIN repositories r ON r.id = t.repo_id "
          "WHERE r.name >= ? AND r.name <= ? GROUP BY r.name");
      s.bind(first).bind(last);
      while (s.step()) out[s.text(0)] = TagSummary{static_cast<uint64_t>(s.i64(1)), s.i64(2)};
      return out;
    });
  }
  bool blob_in_use(std::string_view digest) override {
    return with([&](Conn& c) { return in_use(c, digest); });
  }
  static bool in_use(Conn& c, std::string_view digest) {
    {
      auto s = c.prepare(
          "SELECT EXISTS(SELECT 1 FROM repo_blobs WHERE digest = ?1) "
          "OR EXISTS(SELECT 1 FROM manifest_refs WHERE ref = ?1) "
          "OR EXISTS(SELECT 1 FROM squash_cache WHERE layer_digest = "
          "?1 OR gz_digest = ?1) "
          "OR EXISTS(SELECT 1 FROM layer_index WHERE index_digest = "
          "?1 OR states_digest = ?1)");
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
      c.prepare(
           "INSERT INTO blob_states(digest, deleting, written, marked) "
           "VALUES(?, 0, ?, 0) ON CONFLICT(digest) DO UPDATE "
           "SET deleting = 0, written = excluded.written, marked = 0")
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
        auto s = c.prepare(
            "SELECT deleting, written, marked FROM blob_states "
            "WHERE digest = ?");
        s.bind(digest);
        if (s.step()) {
          if (s.i64(0) != 0 && s.i64(2) >= now - kStaleDeleteMark) return Mark::Busy;
          if (s.i64(0) == 0 && s.i64(1) >= cutoff) return Mark::WrittenSince;
        }
      }
      c.prepare(
           "INSERT INTO blob_states(digest, deleting, written, marked) "
           "VALUES(?, 1, 0, ?) ON CONFLICT(digest) DO UPDATE "
           "SET deleting = 1, written = 0, marked = excluded.marked")
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
          "SELECT m.digest, m.media_type, m.body, "
          "m.artifact_type, m.annotations FROM manifests m "
          "JOIN repositories r ON r.id = m.repo_id WHERE r.name "
          "= ? AND m.subject = ? ORDER BY m.digest");
      s.bind(repo).bind(subject);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), std::string(subject), s.text(4)});
      return out;
    });
  }

  void create_upload(const UploadRecord& u, Commit commit) override {
    auto insert = [&](Conn& c) {
      c.prepare(
           "INSERT INTO uploads(id, repo, created, updated, size, "
           "driver_state, digest_state) VALUES(?,?,?,?,?,?,?)")
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
      auto s = c.prepare(
          "SELECT repo, created, updated, size, driver_state, "
          "digest_state FROM uploads WHERE id = ?");
      s.bind(id);
      if (!s.step()) return std::nullopt;
      return UploadRecord{std::string(id), s.text(0), s.i64(1), s.i64(2), static_cast<uint64_t>(s.i64(3)),
                          s.text(4),       s.text(5)};
    });
  }
  void touch_upload(std::string_view id, int64_t now) override {
    write([&](Conn& c) { c.prepare("UPDATE uploads SET updated = ? WHERE id = ?").bind(now).bind(id).run(); });
  }
  void save_upload_progress(const UploadRecord& u) override {
    db_.write_relaxed([&](Conn& c) {
      c.prepare(
           "UPDATE uploads SET updated = ?, size = ?, driver_state = ?, "
           "digest_state = ? WHERE id = ?")
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
          "SELECT id, repo, created, updated, size, driver_state, "
          "digest_state FROM uploads WHERE updated < ?");
      s.bind(before);
      while (s.step())
        out.push_back(
            {s.text(0), s.text(1), s.i64(2), s.i64(3), static_cast<uint64_t>(s.i64(4)), s.text(5), s.text(6)});
      return out;
    });
  }
  std::optional<SquashRecord> get_squash(std::string_view key) override {
    return with([&](Conn& c) -> std::optional<SquashRecord> {
      auto s = c.prepare(
          "SELECT manifest_digest, layer_digest, layer_size, "
          "layer_dir, config, created, last_used, gz_digest, "
          "gz_size, layer_crc FROM squash_cache WHERE key = ?");
      s.bind(key);
      if (!s.step()) return std::nullopt;
      return SquashRecord{std::string(key),
                          s.text(0),
                          s.text(1),
                          static_cast<uint64_t>(s.i64(2)),
                          s.text(3),
                          s.text(4),
                          s.i64(5),
                          s.i64(6),
                          s.text(7),
                          static_cast<uint64_t>(s.i64(8)),
                          static_cast<uint32_t>(s.i64(9))};
    });
  }
  void put_squash(const SquashRecord& r) override {
    write([&](Conn& c) {
      c.prepare(
           "INSERT INTO squash_cache(key, manifest_digest, layer_digest, "
           "layer_size, layer_dir, config, created, "
           "last_used) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE "
           "SET manifest_digest = excluded.manifest_digest, "
           "layer_digest = excluded.layer_digest, layer_size = "
           "excluded.layer_size, layer_dir = excluded.layer_dir, "
           "config = excluded.config, created = excluded.created, "
           "last_used = excluded.last_used, gz_digest = '', "
           "gz_size = 0, layer_crc = 0")
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
      c.prepare(
           "UPDATE squash_cache SET gz_digest = ?, gz_size = ?, layer_crc "
           "= ? WHERE key = ?")
          .bind(gz_digest)
          .bind(static_cast<int64_t>(gz_size))
          .bind(static_cast<int64_t>(layer_crc))
          .bind(key)
          .run();
    });
  }
  size_t delete_squash_of_manifest(std::string_view manifest_digest) override {
    return write([&](Conn& c) {
      c.prepare("DELETE FROM squash_cache WHERE manifest_digest = ?").bind(manifest_digest).run();
      return static_cast<size_t>(changes(c));
    });
  }
  uint64_t squash_cache_bytes() override {
    return with([&](Conn& c) {
      auto s = c.prepare(
          "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM (SELECT layer_digest AS d, max(layer_size) AS size FROM squash_cache "
          "GROUP BY layer_digest UNION SELECT gz_digest, max(gz_size) FROM squash_cache WHERE gz_digest <> '' "
          "GROUP BY gz_digest) AS held");
      s.step();
      return static_cast<uint64_t>(s.i64(0));
    });
  }
  std::vector<SquashRecord> squash_records() override {
    return with([&](Conn& c) {
      std::vector<SquashRecord> out;
      auto s = c.prepare(
          "SELECT key, manifest_digest, layer_digest, layer_size, "
          "layer_dir, created, last_used, gz_digest, gz_size, "
          "layer_crc FROM squash_cache ORDER BY last_used, key");
      while (s.step())
        out.push_back({s.text(0), s.text(1), s.text(2), static_cast<uint64_t>(s.i64(3)), s.text(4), "", s.i64(5),
                       s.i64(6), s.text(7), static_cast<uint64_t>(s.i64(8)), static_cast<uint32_t>(s.i64(9))});
      return out;
    });
  }
  std::optional<LayerIndexRecord> get_layer_index(std::string_view layer_digest) override {
    return with([&](Conn& c) -> std::optional<LayerIndexRecord> {
      auto s = c.prepare(
          "SELECT format, index_digest, entries, states_digest "
          "FROM layer_index WHERE layer_digest = ?");
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
           "INSERT INTO layer_index(layer_digest, format, index_digest, "
           "entries, states_digest) VALUES(?,?,?,?,?) "
           "ON CONFLICT(layer_digest) DO UPDATE SET format = excluded.format, "
           "index_digest = excluded.index_digest, "
           "entries = excluded.entries, states_digest = excluded.states_digest")
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
  Db db_;
};

}  // namespace wharf::meta
