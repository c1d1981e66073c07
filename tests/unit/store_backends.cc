#include "store_backends.h"

#include <stdlib.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "meta/pg_store.h"
#include "meta/sqlite_store.h"
#include "storage/fs_blob_store.h"
#include "storage/s3_blob_store.h"

namespace wharf::testing_backends {

namespace {
// PostgreSQL joins the suites when WHARF_TEST_PG_DSN names a server
// (scripts/test.sh starts one and sets it, so CI always runs them; a run
// without it says so on stderr). Each test directory is a schema of its own.
const char* pg_dsn() {
  static const char* dsn = [] {
    const char* d = std::getenv("WHARF_TEST_PG_DSN");
    if (!d || !*d) std::fprintf(stderr, "WHARF_TEST_PG_DSN is not set: the store suites run without PostgreSQL\n");
    return d && *d ? d : nullptr;
  }();
  return dsn;
}
meta::pg::Options pg_options(const std::string& dir) {
  meta::pg::Options o;
  o.dsn = pg_dsn();
  o.schema = "t_" + std::to_string(std::hash<std::string>{}(dir));
  o.pool_size = 8;
  return o;
}
// S3 joins the blob suite when WHARF_TEST_S3_ENDPOINT names a store
// (scripts/test.sh starts a Ceph RADOS Gateway); its credentials come from
// WHARF_TEST_S3_ACCESS_KEY / WHARF_TEST_S3_SECRET_KEY. Each test directory is
// a key prefix of its own in the bucket "wharf-test" (created when missing).
const char* s3_endpoint() {
  static const char* e = [] {
    const char* d = std::getenv("WHARF_TEST_S3_ENDPOINT");
    if (!d || !*d) std::fprintf(stderr, "WHARF_TEST_S3_ENDPOINT is not set: the blob suite runs without S3\n");
    return d && *d ? d : nullptr;
  }();
  return e;
}
storage::S3StoreOptions s3_options(const std::string& dir) {
  storage::S3StoreOptions o;
  o.client.endpoint = s3_endpoint();
  o.client.bucket = "wharf-test";
  auto env = [](const char* n, const char* dflt) {
    const char* v = std::getenv(n);
    return std::string(v && *v ? v : dflt);
  };
  o.client.access_key = env("WHARF_TEST_S3_ACCESS_KEY", "testak");
  o.client.secret_key = env("WHARF_TEST_S3_SECRET_KEY", "testsk");
  o.prefix = "t" + std::to_string(std::hash<std::string>{}(dir)) + "/";
  o.part_size = 5 << 20;  // S3's smallest: the suite's blobs span several parts
  static std::once_flag bucket;
  std::call_once(bucket, [&] {
    storage::s3::Client c(o.client);
    storage::s3::Request r;
    r.method = "PUT";
    r.ok_statuses = {409};  // BucketAlreadyOwnedByYou
    c.send(r);
  });
  return o;
}
}  // namespace

std::vector<MetaBackend>& meta_backends() {
  static std::vector<MetaBackend> list = {
      {"sqlite", [](const std::string& dir) { return meta::make_sqlite_store(dir + "/meta.db"); }},
      {"sqlite+cache",
       [](const std::string& dir) {
         return meta::make_cached_store(meta::make_sqlite_store(dir + "/meta.db"), 60000);
       }},
  };
  static const bool pg = [] {
    if (pg_dsn()) list.push_back({"postgres", [](const std::string& dir) { return meta::make_pg_store(pg_options(dir)); }});
    return true;
  }();
  (void)pg;
  return list;
}

std::vector<AccountBackend>& account_backends() {
  static std::vector<AccountBackend> list = {
      {"sqlite", [](const std::string& dir) { return meta::make_sqlite_accounts(dir + "/meta.db"); }},
  };
  static const bool pg = [] {
    if (pg_dsn())
      list.push_back({"postgres", [](const std::string& dir) { return meta::make_pg_accounts(pg_options(dir)); }});
    return true;
  }();
  (void)pg;
  return list;
}

std::vector<BlobBackend>& blob_backends() {
  static std::vector<BlobBackend> list = {
      {"filesystem", [](const std::string& dir) { return storage::make_fs_blob_store(dir); }},
  };
  static const bool s3 = [] {
    if (s3_endpoint())
      list.push_back({"s3", [](const std::string& dir) { return storage::make_s3_blob_store(s3_options(dir)); }});
    return true;
  }();
  (void)s3;
  return list;
}

bool register_blob_backend(BlobBackend b) {
  blob_backends().push_back(std::move(b));
  return true;
}
bool register_meta_backend(MetaBackend b) {
  meta_backends().push_back(std::move(b));
  return true;
}
bool register_account_backend(AccountBackend b) {
  account_backends().push_back(std::move(b));
  return true;
}

namespace {
template <class List>
std::vector<std::string> names(const List& list) {
  std::vector<std::string> out;
  for (const auto& b : list) out.push_back(b.name);
  return out;
}
template <class List>
const auto& find(const List& list, const std::string& name) {
  for (const auto& b : list)
    if (b.name == name) return b;
  throw std::out_of_range("no store backend named " + name);
}
}  // namespace

std::vector<std::string> meta_backend_names() { return names(meta_backends()); }
std::vector<std::string> account_backend_names() { return names(account_backends()); }
const MetaBackend& meta_backend(const std::string& name) { return find(meta_backends(), name); }
const AccountBackend& account_backend(const std::string& name) { return find(account_backends(), name); }
std::vector<std::string> blob_backend_names() { return names(blob_backends()); }
const BlobBackend& blob_backend(const std::string& name) { return find(blob_backends(), name); }

std::string test_name(const std::string& backend) {
  std::string out = backend;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace wharf::testing_backends
