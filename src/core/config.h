// core/config.h — wharf's configuration, loaded from YAML; command-line flags
// override individual fields after loading (see cli/).
//
// The structs nest the way the YAML does: one struct per section, which the
// part it configures takes as it is. Each struct lists its keys once, in
// visit() beside the fields, and that list is both what the loader reads and
// what it accepts: a new setting is one field, one visit line and its line
// in the README's settings. Unknown keys are an error naming the key.
//
// Every field has a default, so an empty file (or none) is a working
// embedded set-up: SQLite + filesystem under `data_dir`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wharf::core {

struct TlsConfig {
  // When both are set the listener speaks TLS (a plain-HTTP client gets an
  // error); when unset a TLS ClientHello gets a plain 400.
  std::string cert, key;
  template <class V> void visit(V& v) { v("cert", cert); v("key", key); }
};

struct LogConfig {
  std::string format = "text";  // text | json
  bool requests = true;
  template <class V> void visit(V& v) { v("format", format); v("requests", requests); }
};

struct DeleteConfig {
  bool enabled = true;
  template <class V> void visit(V& v) { v("enabled", enabled); }
};

struct UploadsConfig {
  int expiry_seconds = 24 * 3600;  // abandoned upload sessions expire
  int purge_interval_seconds = 600;
  template <class V> void visit(V& v) {
    v("expiry_seconds", expiry_seconds);
    v("purge_interval_seconds", purge_interval_seconds);
  }
};

// Garbage collection while serving (gc/README.md): every interval, once in
// the cluster; `wharf gc` runs the same collection by hand.
struct GcConfig {
  int interval_seconds = 0;  // 0: no schedule
  int grace_minutes = 60;    // only blobs committed longer ago are removed
  template <class V> void visit(V& v) { v("interval_seconds", interval_seconds); v("grace_minutes", grace_minutes); }
};

struct LimitsConfig {
  uint64_t max_manifest_bytes = 4 * 1024 * 1024;
  int page_size_max = 10000;  // largest `n` accepted for tags/list and _catalog
  // Open connections in all (0: half the descriptor limit) and from one
  // peer address (0: none; trusted proxies exempt).
  uint64_t max_connections = 0;
  uint64_t max_connections_per_client = 256;
  template <class V> void visit(V& v) {
    v("max_manifest_bytes", max_manifest_bytes);
    v("page_size_max", page_size_max);
    v("max_connections", max_connections);
    v("max_connections_per_client", max_connections_per_client);
  }
};

struct TimeoutsConfig {
  int header_seconds = 30;  // time to receive a request's headers
  int body_seconds = 120;   // max silence while reading a body (per read)
  int send_seconds = 60;    // max wait for a client to take bytes (per write)
  int idle_seconds = 60;    // keep-alive connection with no request
  int drain_seconds = 30;   // SIGTERM: how long requests in flight may finish
  template <class V> void visit(V& v) {
    v("header_seconds", header_seconds);
    v("body_seconds", body_seconds);
    v("send_seconds", send_seconds);
    v("idle_seconds", idle_seconds);
    v("drain_seconds", drain_seconds);
  }
};

struct CacheConfig {
  // Staleness bound of the in-process cache of tags and manifests. Writes
  // through this process invalidate at once; writes by other replicas are
  // seen within this many milliseconds.
  int metadata_ttl_ms = 2000;
  template <class V> void visit(V& v) { v("metadata_ttl_ms", metadata_ttl_ms); }
};

struct ManifestsConfig {
  // Accept manifests whose blobs or child manifests were not pushed (sparse
  // manifests, for mirrors that copy some platforms of an index).
  bool allow_sparse = false;
  uint64_t max_tags_per_push = 100;  // `tag` parameters of one PUT (414 beyond)
  template <class V> void visit(V& v) { v("allow_sparse", allow_sparse); v("max_tags_per_push", max_tags_per_push); }
};

// What one image may cost to squash (squash/limits.h takes this as it is).
struct SquashLimitsConfig {
  uint64_t max_uncompressed_bytes = 64ull << 30;  // per image, all layers
  uint64_t max_entries = 2'000'000;               // tar entries per image
  uint64_t max_pax_bytes = 1 << 20;               // one PAX extended header
  uint64_t max_path_bytes = 4096;  // a path or link target; at most 65535 (the index stores lengths in 16 bits)
  int zstd_window_log_max = 25;    // 32 MiB: bounds decoder memory
  template <class V> void visit(V& v) {
    v("max_uncompressed_bytes", max_uncompressed_bytes);
    v("max_entries", max_entries);
    v("max_pax_bytes", max_pax_bytes);
    v("max_path_bytes", max_path_bytes);
    v("zstd_window_log_max", zstd_window_log_max);
  }
};

struct AutoPrimeConfig {
  // Build the squash cache entry whenever a tag is pushed: everywhere, or in
  // the listed namespaces ("acme") and repositories ("acme/web").
  bool all = false;
  std::vector<std::string> namespaces, repositories;
  template <class V> void visit(V& v) { v("all", all); v("namespaces", namespaces); v("repositories", repositories); }
};

// Squashed downloads (/c1/squash).
struct SquashConfig {
  std::string default_platform = "linux/amd64";
  std::string repo_host;  // host in RepoTags; empty: the request's
  int workers = 0;        // builds at a time; 0: one per core
  int queue_max = 16;     // waiting builds before 503 + Retry-After
  // Memory builds and planned sizes may hold at once (0: a quarter of RAM,
  // at least 1 GiB); see squash/service.h.
  uint64_t memory_budget_bytes = 0;
  uint64_t cache_max_bytes = 50ull << 30;
  // Distance between inflate checkpoints in layer indexes, so one large gzip
  // layer decodes on several cores (0: none). squash/build.h.
  uint64_t inflate_checkpoint_bytes = 4 << 20;
  // Index layers while they are pushed and the layers of every pushed image
  // in the background, so its first squash decodes each layer once.
  bool index_on_push = true;
  SquashLimitsConfig limits;
  AutoPrimeConfig auto_prime;
  template <class V> void visit(V& v) {
    v("default_platform", default_platform);
    v("repo_host", repo_host);
    v("workers", workers);
    v("queue_max", queue_max);
    v("memory_budget_bytes", memory_budget_bytes);
    v("cache_max_bytes", cache_max_bytes);
    v("inflate_checkpoint_bytes", inflate_checkpoint_bytes);
    v("index_on_push", index_on_push);
    v("limits", limits);
    v("auto_prime", auto_prime);
  }
};

// Accounts and Docker token auth (auth/). Disabled: an open registry, for a
// trusted network only.
struct AuthConfig {
  bool enabled = true;
  std::string service = "wharf";  // `service` of the token flow, `aud` of tokens
  std::string issuer = "wharf";
  // Keys live outside the data directory. key_dir defaults to
  // $WHARF_KEY_DIR, else $HOME/.config/wharf; the robot-token key may instead
  // come from $WHARF_SECRET_KEY (64 hex characters).
  std::string key_dir;
  std::string secret_key_file;  // default <key_dir>/secret.key
  std::string token_key_file;   // default <key_dir>/token-key.pem (EC P-256)
  int token_ttl_seconds = 300;
  int refresh_ttl_seconds = 30 * 24 * 3600;
  int session_ttl_seconds = 12 * 3600;
  bool new_repos_public = false;
  int max_failed_logins = 5;
  int max_failed_logins_per_address = 100;
  int failed_login_window_seconds = 300;
  int block_seconds = 60;
  int password_cache_seconds = 60;
  template <class V> void visit(V& v) {
    v("enabled", enabled);
    v("service", service);
    v("issuer", issuer);
    v("key_dir", key_dir);
    v("secret_key_file", secret_key_file);
    v("token_key_file", token_key_file);
    v("token_ttl_seconds", token_ttl_seconds);
    v("refresh_ttl_seconds", refresh_ttl_seconds);
    v("session_ttl_seconds", session_ttl_seconds);
    v("new_repos_public", new_repos_public);
    v("max_failed_logins", max_failed_logins);
    v("max_failed_logins_per_address", max_failed_logins_per_address);
    v("failed_login_window_seconds", failed_login_window_seconds);
    v("block_seconds", block_seconds);
    v("password_cache_seconds", password_cache_seconds);
  }
};

// storage: {driver: filesystem, filesystem: {...}}: each driver's parameters
// under its name (cli/stores.h builds the store).
struct FilesystemStorageConfig {
  // Evict a committed upload's pages from memory (storage/blob_store.h);
  // false keeps freshly pushed blobs cached.
  bool drop_committed = true;
  template <class V> void visit(V& v) { v("drop_committed", drop_committed); }
};

// storage: {driver: s3, s3: {...}} — blobs, upload staging and the squash
// cache's layers in an S3-compatible object store.
struct S3StorageConfig {
  std::string endpoint;         // http(s)://host:port of the store, as wharf reaches it
  std::string public_endpoint;  // as clients reach it, for presigned URLs ("" : endpoint)
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;           // keys start with it
  std::string access_key;       // or $WHARF_S3_ACCESS_KEY
  std::string secret_key;       // or secret_key_file, or $WHARF_S3_SECRET_KEY
  std::string secret_key_file;
  bool path_style = true;       // http://host/bucket/key; false: http://bucket.host/key
  bool tls_verify = true;
  std::string ca_file;
  std::string redirect = "proxy";  // blob GETs: proxy (streamed by wharf) or presigned (307 to the store)
  int64_t presign_ttl_seconds = 300;
  uint64_t part_size = 16ull << 20;  // multipart part size (>= 5 MiB); doubles every 1000 parts
  int abort_incomplete_uploads_days = 1;  // lifecycle rule on <prefix>uploads/; 0: none
  template <class V> void visit(V& v) {
    v("endpoint", endpoint);
    v("public_endpoint", public_endpoint);
    v("region", region);
    v("bucket", bucket);
    v("prefix", prefix);
    v("access_key", access_key);
    v("secret_key", secret_key);
    v("secret_key_file", secret_key_file);
    v("path_style", path_style);
    v("tls_verify", tls_verify);
    v("ca_file", ca_file);
    v("redirect", redirect);
    v("presign_ttl_seconds", presign_ttl_seconds);
    v("part_size", part_size);
    v("abort_incomplete_uploads_days", abort_incomplete_uploads_days);
  }
};

struct StorageConfig {
  std::string driver = "filesystem";
  FilesystemStorageConfig filesystem;
  S3StorageConfig s3;
  template <class V> void visit(V& v) {
    v("driver", driver);
    v("filesystem", filesystem);
    v("s3", s3);
    v("drop_committed", filesystem.drop_committed);  // the older spelling, beside `driver`
    // the older spelling, beside `driver`;
  }
};

struct SqliteMetadataConfig {
  std::string path;  // default <data_dir>/wharf.db
  template <class V> void visit(V& v) { v("path", path); }
};

// metadata: {driver: postgres, postgres: {...}} — several wharf processes on
// one database. The password may come from password_file (read at start) or
// libpq's own PGPASSWORD / ~/.pgpass instead of the dsn.
struct PostgresMetadataConfig {
  std::string dsn;            // libpq: "host=... dbname=... user=..." or postgresql://user@host:port/db
  std::string password_file;  // optional: a file holding the password (trailing newline ignored)
  std::string schema;         // optional: tables in this schema (created when missing); default the server's
  int pool_size = 16;         // connections per process at most
  int connect_timeout_seconds = 5;
  int statement_timeout_ms = 30000;
  int acquire_timeout_ms = 10000;  // a request waits this long for a free connection, then fails (503)
  template <class V> void visit(V& v) {
    v("dsn", dsn);
    v("password_file", password_file);
    v("schema", schema);
    v("pool_size", pool_size);
    v("connect_timeout_seconds", connect_timeout_seconds);
    v("statement_timeout_ms", statement_timeout_ms);
    v("acquire_timeout_ms", acquire_timeout_ms);
  }
};

struct MetadataConfig {
  std::string driver = "sqlite";
  SqliteMetadataConfig sqlite;
  PostgresMetadataConfig postgres;
  template <class V> void visit(V& v) { v("driver", driver); v("sqlite", sqlite); v("postgres", postgres); }
};

// cluster: several `wharf serve` replicas on one PostgreSQL database and one
// S3 bucket (docs/deployment.md). Set `advertise` to run as a replica:
// wharf then refuses the embedded backends, takes cluster-wide leases for
// squash builds (another replica's clients are relayed from the builder, to
// `advertise`, authenticated with the shared secret) and runs periodic work
// once in the cluster.
struct ClusterConfig {
  std::string replica_id;   // names this replica in logs and leases ("" : the advertised address)
  std::string advertise;    // host:port the other replicas reach this one at (plain HTTP, internal network)
  std::string secret_file;  // the secret every replica shares (at least 32 bytes; trailing newline ignored)
  template <class V> void visit(V& v) {
    v("replica_id", replica_id);
    v("advertise", advertise);
    v("secret_file", secret_file);
  }
};

struct Config {
  std::string listen = "127.0.0.1:5000";
  std::string data_dir = "./wharf-data";
  // Base URL clients reach us at ("https://registry.example.com"); when empty
  // Location headers are built from Host / X-Forwarded-*.
  std::string external_url;
  int threads = 0;  // I/O threads; 0: twice the cores, at least 4
  // Threads that make blocking backend calls (PostgreSQL, S3) while the I/O
  // threads serve other connections; 0: none with the embedded backends
  // (calls run inline), 32 with a remote one.
  int backend_threads = 0;
  // Maintenance (the final pass of `wharf migrate`): pulls, cached squashes,
  // sign-ins and the UI keep working; pushes, deletes, squash builds and
  // account changes are refused naming this setting.
  bool read_only = false;
  // Peer addresses whose X-Forwarded-For/-Proto/-Host are believed.
  std::vector<std::string> trusted_proxies;
  TlsConfig tls;
  LogConfig log;
  DeleteConfig delete_;
  UploadsConfig uploads;
  GcConfig gc;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  CacheConfig cache;
  ManifestsConfig manifests;
  SquashConfig squash;
  AuthConfig auth;
  StorageConfig storage;
  MetadataConfig metadata;
  ClusterConfig cluster;
  template <class V> void visit(V& v) {
    v("listen", listen);
    v("data_dir", data_dir);
    v("external_url", external_url);
    v("threads", threads);
    v("backend_threads", backend_threads);
    v("read_only", read_only);
    v("trusted_proxies", trusted_proxies);
    v("tls", tls);
    v("log", log);
    v("delete", delete_);
    v("uploads", uploads);
    v("gc", gc);
    v("limits", limits);
    v("timeouts", timeouts);
    v("cache", cache);
    v("manifests", manifests);
    v("squash", squash);
    v("auth", auth);
    v("storage", storage);
    v("metadata", metadata);
    v("cluster", cluster);
  }
};

// Loads a YAML file. Throws std::runtime_error naming the file and field on a
// malformed value. Unknown keys are an error too (a typo must not be silent).
Config load_config(const std::string& path);
// The same from YAML text (`where` names it in errors).
Config parse_config(const std::string& yaml, const std::string& where);

}  // namespace wharf::core
