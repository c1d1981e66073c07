// SQLite MetadataStore: its schema, and sql_metadata_store.h's queries on
// sqlite_db.h's connections. One connection per thread-in-use from a small
// pool; WAL lets readers run beside the single writer; writes use BEGIN
// IMMEDIATE so two writers never deadlock on a lock upgrade.
#include "meta/sqlite_store.h"

#include <iterator>
#include <vector>

#include "meta/sql_metadata_store.h"
#include "meta/sqlite_db.h"

namespace wharf::meta {

namespace {

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
    // version 5: the saved inflate states of a layer index (a blob of their
    // own)
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

}  // namespace

std::unique_ptr<MetadataStore> make_sqlite_store(const std::string& path) {
  auto s = std::make_unique<SqlMetadataStore<sqlite::Db>>(path);
  s->db().migrate("schema_version", std::vector<const char*>(std::begin(kSchema), std::end(kSchema)));
  return s;
}

}  // namespace wharf::meta
