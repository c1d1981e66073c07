#include "cli/stores.h"

#include "meta/pg_store.h"
#include "meta/sqlite_store.h"
#include "storage/fs_blob_store.h"
#include "storage/s3_blob_store.h"

#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <functional>
#include <map>
#include <stdexcept>

namespace wharf::cli {

namespace {

template <class T>
using Table = std::map<std::string, std::function<std::unique_ptr<T>(const core::Config&)>>;

std::string sqlite_path(const core::Config& c) {
  return c.metadata.sqlite.path.empty() ? c.data_dir + "/wharf.db" : c.metadata.sqlite.path;
}

std::string read_secret(const std::string& file, const char* setting) {
  std::ifstream f(file);
  if (!f) throw std::runtime_error(std::string(setting) + ": cannot read " + file);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  return v;
}

meta::pg::Options pg_options(const core::Config& c) {
  const auto& p = c.metadata.postgres;
  if (p.dsn.empty()) throw std::runtime_error("metadata.postgres.dsn is not set (metadata.driver is postgres)");
  meta::pg::Options o;
  o.dsn = p.dsn;
  if (!p.password_file.empty()) o.password = read_secret(p.password_file, "metadata.postgres.password_file");
  o.schema = p.schema;
  o.pool_size = p.pool_size;
  o.connect_timeout_seconds = p.connect_timeout_seconds;
  o.statement_timeout_ms = p.statement_timeout_ms;
  o.acquire_timeout_ms = p.acquire_timeout_ms;
  return o;
}

storage::S3StoreOptions s3_options(const core::Config& c) {
  const auto& s = c.storage.s3;
  storage::S3StoreOptions o;
  o.client.endpoint = s.endpoint;
  o.client.public_endpoint = s.public_endpoint;
  o.client.region = s.region;
  o.client.bucket = s.bucket;
  o.client.access_key = s.access_key;
  if (o.client.access_key.empty() && std::getenv("WHARF_S3_ACCESS_KEY")) o.client.access_key = std::getenv("WHARF_S3_ACCESS_KEY");
  o.client.secret_key = s.secret_key;
  if (!s.secret_key_file.empty()) o.client.secret_key = read_secret(s.secret_key_file, "storage.s3.secret_key_file");
  if (o.client.secret_key.empty() && std::getenv("WHARF_S3_SECRET_KEY")) o.client.secret_key = std::getenv("WHARF_S3_SECRET_KEY");
  if (o.client.access_key.empty() || o.client.secret_key.empty())
    throw std::runtime_error("storage.s3: access_key and secret_key (or secret_key_file, or $WHARF_S3_ACCESS_KEY and "
                             "$WHARF_S3_SECRET_KEY) are needed");
  o.client.path_style = s.path_style;
  o.client.tls_verify = s.tls_verify;
  o.client.ca_file = s.ca_file;
  if (s.redirect != "proxy" && s.redirect != "presigned")
    throw std::runtime_error("storage.s3.redirect: \"" + s.redirect + "\" is neither proxy nor presigned");
  o.redirect = s.redirect;
  o.presign_ttl_seconds = s.presign_ttl_seconds;
  o.part_size = s.part_size;
  o.prefix = s.prefix;
  o.abort_incomplete_uploads_days = s.abort_incomplete_uploads_days;
  return o;
}

const Table<storage::BlobStore>& blob_table() {
  static const Table<storage::BlobStore> t = {
      {"filesystem",
       [](const core::Config& c) {
         return storage::make_fs_blob_store(c.data_dir, c.storage.filesystem.drop_committed);
       }},
      {"s3", [](const core::Config& c) { return storage::make_s3_blob_store(s3_options(c)); }},
  };
  return t;
}

const Table<meta::MetadataStore>& meta_table() {
  static const Table<meta::MetadataStore> t = {
      {"sqlite", [](const core::Config& c) { return meta::make_sqlite_store(sqlite_path(c)); }},
      {"postgres", [](const core::Config& c) { return meta::make_pg_store(pg_options(c)); }},
  };
  return t;
}

const Table<meta::AccountStore>& account_table() {
  static const Table<meta::AccountStore> t = {
      {"sqlite", [](const core::Config& c) { return meta::make_sqlite_accounts(sqlite_path(c)); }},
      {"postgres", [](const core::Config& c) { return meta::make_pg_accounts(pg_options(c)); }},
  };
  return t;
}

template <class T>
std::vector<std::string> names(const Table<T>& t) {
  std::vector<std::string> out;
  for (const auto& [k, _] : t) out.push_back(k);
  return out;
}

template <class T>
void check(const Table<T>& t, const std::string& setting, const std::string& driver) {
  if (t.count(driver)) return;
  std::string known;
  for (const auto& n : names(t)) known += (known.empty() ? "" : ", ") + n;
  throw std::runtime_error("unknown " + setting + " \"" + driver + "\" (known: " + known + ")");
}

template <class T>
std::unique_ptr<T> open(const Table<T>& t, const std::string& setting, const std::string& driver,
                        const core::Config& c) {
  check(t, setting, driver);
  std::filesystem::create_directories(c.data_dir);
  return t.at(driver)(c);
}

}  // namespace

std::unique_ptr<storage::BlobStore> open_blob_store(const core::Config& cfg) {
  return open(blob_table(), "storage.driver", cfg.storage.driver, cfg);
}

std::unique_ptr<meta::MetadataStore> open_metadata_store(const core::Config& cfg, bool cached) {
  auto m = open(meta_table(), "metadata.driver", cfg.metadata.driver, cfg);
  return cached ? meta::make_cached_store(std::move(m), cfg.cache.metadata_ttl_ms) : std::move(m);
}

std::unique_ptr<meta::AccountStore> open_account_store(const core::Config& cfg) {
  return open(account_table(), "metadata.driver", cfg.metadata.driver, cfg);
}

void check_drivers(const core::Config& cfg) {
  check(blob_table(), "storage.driver", cfg.storage.driver);
  check(meta_table(), "metadata.driver", cfg.metadata.driver);
}

meta::SqlEndpoint sql_endpoint(const core::Config& cfg) {
  check(meta_table(), "metadata.driver", cfg.metadata.driver);
  meta::SqlEndpoint e;
  if (cfg.metadata.driver == "postgres")
    e.pg = pg_options(cfg);
  else
    e.sqlite_path = sqlite_path(cfg);
  return e;
}

std::vector<std::string> storage_drivers() { return names(blob_table()); }
std::vector<std::string> metadata_drivers() { return names(meta_table()); }

}  // namespace wharf::cli
