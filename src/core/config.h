// core/config.h — wharf's configuration, loaded from YAML; command-line flags
// override individual fields after loading (see cli/).
//
// Every field has a default, so an empty file (or none) is a working
// embedded set-up: SQLite + filesystem under `data_dir`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wharf::core {

struct Config {
  std::string listen = "127.0.0.1:5000";
  std::string data_dir = "./wharf-data";
  // Optional TLS: when both are set the listener speaks TLS (a plain-HTTP
  // client gets an error); when unset a TLS ClientHello gets a plain 400.
  std::string tls_cert;
  std::string tls_key;
  std::string log_format = "text";  // text | json
  bool log_requests = true;
  // Base URL clients reach us at ("https://registry.example.com"); when empty
  // Location headers are built from Host / X-Forwarded-*.
  std::string external_url;
  int threads = 0;  // 0: one per core

  bool delete_enabled = true;
  uint64_t max_manifest_bytes = 4 * 1024 * 1024;
  int upload_expiry_seconds = 24 * 3600;  // abandoned upload sessions expire
  int upload_purge_interval_seconds = 600;
  int header_timeout_seconds = 30;        // time to receive a request's headers
  int body_timeout_seconds = 120;         // max silence while reading a body (per read)
  int send_timeout_seconds = 60;          // max wait for a client to take bytes (per write)
  int idle_timeout_seconds = 60;          // keep-alive connection with no request
  // Open connections in all (0: half the descriptor limit) and from one
  // peer address (0: none; trusted proxies exempt).
  uint64_t max_connections = 0;
  uint64_t max_connections_per_client = 256;
  int drain_timeout_seconds = 30;         // SIGTERM: how long requests in flight may finish
  // Staleness bound of the in-process cache of tags and manifests. Writes
  // through this process invalidate at once; writes by other replicas are seen
  // within this many milliseconds.
  int metadata_cache_ttl_ms = 2000;
  int page_size_max = 10000;  // largest `n` accepted for tags/list and _catalog
  // Accept manifests whose blobs or child manifests were not pushed (sparse
  // manifests, for mirrors that copy some platforms of an index).
  bool manifests_allow_sparse = false;
  uint64_t manifests_max_tags_per_push = 100;  // `tag` parameters of one PUT (414 beyond)

  // Squashed downloads (/c1/squash).
  std::string squash_default_platform = "linux/amd64";
  std::string squash_repo_host;  // host in RepoTags; empty: the request's
  int squash_workers = 0;        // builds at a time; 0: one per core
  int squash_queue_max = 16;     // waiting builds before 503 + Retry-After
  // Memory builds and planned sizes may hold at once (0: a quarter of RAM,
  // at least 1 GiB); see squash/service.h.
  uint64_t squash_memory_budget_bytes = 0;
  uint64_t squash_cache_max_bytes = 50ull << 30;
  uint64_t squash_max_uncompressed_bytes = 64ull << 30;
  uint64_t squash_max_entries = 2'000'000;
  uint64_t squash_max_pax_bytes = 1 << 20;
  uint64_t squash_max_path_bytes = 4096;
  int squash_zstd_window_log_max = 25;
  // Distance between inflate checkpoints in layer indexes, so one large gzip
  // layer decodes on several cores (0: none). squash/build.h.
  uint64_t squash_inflate_checkpoint_bytes = 4 << 20;
  // Index the layers of every pushed image in the background, so its first
  // squash decodes each layer once.
  bool squash_index_on_push = true;
  // Build the squash cache entry whenever a tag is pushed: everywhere, or in
  // the listed namespaces ("acme") and repositories ("acme/web").
  bool squash_auto_prime_all = false;
  std::vector<std::string> squash_auto_prime_namespaces;
  std::vector<std::string> squash_auto_prime_repositories;

  // Accounts and Docker token auth (auth/). Disabled: an open registry, for
  // a trusted network only.
  bool auth_enabled = true;
  std::string auth_service = "wharf";  // `service` of the token flow, `aud` of tokens
  std::string auth_issuer = "wharf";
  // Keys live outside the data directory. key_dir defaults to
  // $WHARF_KEY_DIR, else $HOME/.config/wharf; the robot-token key may instead
  // come from $WHARF_SECRET_KEY (64 hex characters).
  std::string auth_key_dir;
  std::string auth_secret_key_file;  // default <key_dir>/secret.key
  std::string auth_token_key_file;   // default <key_dir>/token-key.pem (EC P-256)
  int auth_token_ttl_seconds = 300;
  int auth_refresh_ttl_seconds = 30 * 24 * 3600;
  int auth_session_ttl_seconds = 12 * 3600;
  bool auth_new_repos_public = false;
  int auth_max_failed_logins = 5;
  int auth_max_failed_logins_per_address = 100;
  int auth_failed_login_window_seconds = 300;
  int auth_block_seconds = 60;
  int auth_password_cache_seconds = 60;
  // Peer addresses whose X-Forwarded-For/-Proto/-Host are believed.
  std::vector<std::string> trusted_proxies;

  std::string storage_driver = "filesystem";
  // filesystem driver: evict a committed upload's pages from memory (see
  // storage/blob_store.h); false keeps freshly pushed blobs cached.
  bool storage_drop_committed = true;
  std::string metadata_driver = "sqlite";
};

// Loads a YAML file. Throws std::runtime_error naming the file and field on a
// malformed value. Unknown keys are an error too (a typo must not be silent).
Config load_config(const std::string& path);

}  // namespace wharf::core
