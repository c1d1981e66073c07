// The backends the shared store suites run against (metadata_store_test.cc,
// account_store_test.cc, blob_store_test.cc). A backend joins every suite by registering one
// constructor, like CNCF distribution's testsuites.RegisterSuite:
//
//   add it to the list in store_backends.cc, or from any test file
//   static const bool pg = wharf::testing_backends::register_meta_backend(
//       {"postgres", [](const std::string& dir) { return open_pg(dir); }});
//
// open(dir) must reopen the same data when called again with the same dir
// (the suites check that changes survive a reopen and are visible to a second
// store open at the same time), and must start empty for a fresh dir.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "meta/account_store.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace wharf::testing_backends {

struct MetaBackend {
  std::string name;
  std::function<std::unique_ptr<meta::MetadataStore>(const std::string& dir)> open;
};

struct BlobBackend {
  std::string name;
  // A store on the state under `dir`; a second call on the same dir is a
  // second process's view of the same store.
  std::function<std::unique_ptr<storage::BlobStore>(const std::string& dir)> open;
};

struct AccountBackend {
  std::string name;
  std::function<std::unique_ptr<meta::AccountStore>(const std::string& dir)> open;
};

// Registered backends (the built-in ones first).
std::vector<MetaBackend>& meta_backends();
std::vector<AccountBackend>& account_backends();
std::vector<BlobBackend>& blob_backends();

// Adds a backend; returns true so it can initialise a static. Register before
// main() (static initialisation): the suites read the list when gtest
// instantiates them.
bool register_meta_backend(MetaBackend b);
bool register_account_backend(AccountBackend b);
bool register_blob_backend(BlobBackend b);

// The registered names, for ::testing::ValuesIn.
std::vector<std::string> meta_backend_names();
std::vector<std::string> account_backend_names();
std::vector<std::string> blob_backend_names();

// The backend named `name`; throws std::out_of_range when none is.
const MetaBackend& meta_backend(const std::string& name);
const AccountBackend& account_backend(const std::string& name);
const BlobBackend& blob_backend(const std::string& name);

// A gtest parameter name for a backend name ("sqlite+cache" -> "sqlite_cache").
std::string test_name(const std::string& backend);

// A fresh directory under the system temp dir, removed with its contents on
// destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace wharf::testing_backends
