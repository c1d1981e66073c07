#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <set>
#include <stdexcept>

namespace wharf::core {

namespace {
void check_keys(const YAML::Node& n, const std::string& where, const std::set<std::string>& allowed) {
  if (!n.IsMap()) throw std::runtime_error(where + ": expected a mapping");
  for (auto it = n.begin(); it != n.end(); ++it) {
    auto k = it->first.as<std::string>();
    if (!allowed.count(k)) throw std::runtime_error("unknown configuration key " + where + "." + k);
  }
}
template <class T>
void get(const YAML::Node& n, const char* key, T& out) {
  if (n[key]) out = n[key].as<T>();
}
}  // namespace

Config load_config(const std::string& path) {
  Config c;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read config " + path + ": " + e.what());
  }
  if (root.IsNull()) return c;
  try {
    check_keys(root, "", {"listen", "data_dir", "tls", "log", "external_url", "threads", "delete", "uploads",
                          "limits", "timeouts", "cache", "storage", "metadata", "squash", "auth", "trusted_proxies",
                          "manifests"});
    if (auto m = root["manifests"]) {
      check_keys(m, "manifests", {"allow_sparse", "max_tags_per_push"});
      get(m, "allow_sparse", c.manifests_allow_sparse);
      get(m, "max_tags_per_push", c.manifests_max_tags_per_push);
    }
    get(root, "trusted_proxies", c.trusted_proxies);
    if (auto a = root["auth"]) {
      check_keys(a, "auth",
                 {"enabled", "service", "issuer", "key_dir", "secret_key_file", "token_key_file", "token_ttl_seconds",
                  "refresh_ttl_seconds", "session_ttl_seconds", "new_repos_public", "max_failed_logins",
                  "max_failed_logins_per_address",
                  "failed_login_window_seconds", "block_seconds", "password_cache_seconds"});
      get(a, "enabled", c.auth_enabled);
      get(a, "service", c.auth_service);
      get(a, "issuer", c.auth_issuer);
      get(a, "key_dir", c.auth_key_dir);
      get(a, "secret_key_file", c.auth_secret_key_file);
      get(a, "token_key_file", c.auth_token_key_file);
      get(a, "token_ttl_seconds", c.auth_token_ttl_seconds);
      get(a, "refresh_ttl_seconds", c.auth_refresh_ttl_seconds);
      get(a, "session_ttl_seconds", c.auth_session_ttl_seconds);
      get(a, "new_repos_public", c.auth_new_repos_public);
      get(a, "max_failed_logins", c.auth_max_failed_logins);
      get(a, "max_failed_logins_per_address", c.auth_max_failed_logins_per_address);
      get(a, "failed_login_window_seconds", c.auth_failed_login_window_seconds);
      get(a, "block_seconds", c.auth_block_seconds);
      get(a, "password_cache_seconds", c.auth_password_cache_seconds);
    }
    get(root, "listen", c.listen);
    get(root, "data_dir", c.data_dir);
    get(root, "external_url", c.external_url);
    get(root, "threads", c.threads);
    if (auto t = root["tls"]) {
      check_keys(t, "tls", {"cert", "key"});
      get(t, "cert", c.tls_cert);
      get(t, "key", c.tls_key);
    }
    if (auto l = root["log"]) {
      check_keys(l, "log", {"format", "requests"});
      get(l, "format", c.log_format);
      get(l, "requests", c.log_requests);
    }
    if (auto d = root["delete"]) {
      check_keys(d, "delete", {"enabled"});
      get(d, "enabled", c.delete_enabled);
    }
    if (auto u = root["uploads"]) {
      check_keys(u, "uploads", {"expiry_seconds", "purge_interval_seconds"});
      get(u, "expiry_seconds", c.upload_expiry_seconds);
      get(u, "purge_interval_seconds", c.upload_purge_interval_seconds);
    }
    if (auto l = root["limits"]) {
      check_keys(l, "limits", {"max_manifest_bytes", "page_size_max", "max_connections", "max_connections_per_client"});
      get(l, "max_connections", c.max_connections);
      get(l, "max_connections_per_client", c.max_connections_per_client);
      get(l, "max_manifest_bytes", c.max_manifest_bytes);
      get(l, "page_size_max", c.page_size_max);
    }
    if (auto t = root["timeouts"]) {
      check_keys(t, "timeouts", {"header_seconds", "body_seconds", "send_seconds", "idle_seconds", "drain_seconds"});
      get(t, "send_seconds", c.send_timeout_seconds);
      get(t, "idle_seconds", c.idle_timeout_seconds);
      get(t, "header_seconds", c.header_timeout_seconds);
      get(t, "body_seconds", c.body_timeout_seconds);
      get(t, "drain_seconds", c.drain_timeout_seconds);
    }
    if (auto m = root["cache"]) {
      check_keys(m, "cache", {"metadata_ttl_ms"});
      get(m, "metadata_ttl_ms", c.metadata_cache_ttl_ms);
    }
    if (auto q = root["squash"]) {
      check_keys(q, "squash",
                 {"default_platform", "repo_host", "workers", "queue_max", "cache_max_bytes", "limits", "auto_prime",
                  "index_on_push", "inflate_checkpoint_bytes", "memory_budget_bytes"});
      get(q, "memory_budget_bytes", c.squash_memory_budget_bytes);
      get(q, "index_on_push", c.squash_index_on_push);
      get(q, "inflate_checkpoint_bytes", c.squash_inflate_checkpoint_bytes);
      if (auto a = q["auto_prime"]) {
        check_keys(a, "squash.auto_prime", {"all", "namespaces", "repositories"});
        get(a, "all", c.squash_auto_prime_all);
        get(a, "namespaces", c.squash_auto_prime_namespaces);
        get(a, "repositories", c.squash_auto_prime_repositories);
      }
      get(q, "default_platform", c.squash_default_platform);
      get(q, "repo_host", c.squash_repo_host);
      get(q, "workers", c.squash_workers);
      get(q, "queue_max", c.squash_queue_max);
      get(q, "cache_max_bytes", c.squash_cache_max_bytes);
      if (auto l = q["limits"]) {
        check_keys(l, "squash.limits", {"max_uncompressed_bytes", "max_entries", "max_pax_bytes", "max_path_bytes",
                                        "zstd_window_log_max"});
        get(l, "max_uncompressed_bytes", c.squash_max_uncompressed_bytes);
        get(l, "max_entries", c.squash_max_entries);
        get(l, "max_pax_bytes", c.squash_max_pax_bytes);
        get(l, "max_path_bytes", c.squash_max_path_bytes);
        get(l, "zstd_window_log_max", c.squash_zstd_window_log_max);
      }
    }
    if (auto s = root["storage"]) {
      check_keys(s, "storage", {"driver", "drop_committed"});
      get(s, "driver", c.storage_driver);
      get(s, "drop_committed", c.storage_drop_committed);
    }
    if (auto s = root["metadata"]) {
      check_keys(s, "metadata", {"driver"});
      get(s, "driver", c.metadata_driver);
    }
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("config " + path + ": " + e.what());
  }
  if (c.log_format != "text" && c.log_format != "json")
    throw std::runtime_error("config " + path + ": log.format must be text or json");
  return c;
}

}  // namespace wharf::core
