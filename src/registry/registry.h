// registry/registry.h — the OCI Distribution v1.1 / Docker Registry v2 API
// under /v2/: pull, push (monolithic, chunked, streamed), cross-repository
// mount, discovery (tags, catalog, referrers) and deletion.
//
// Owns the protocol's semantics; how blobs and metadata are stored is the
// business of the BlobStore and MetadataStore it is given, so nothing here
// assumes a local filesystem or a single process: upload sessions live in the
// metadata store, their bytes in the blob store, and the digest state kept in
// memory is only a cache (recomputed from the staged bytes when missing).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <string>

#include "auth/access.h"
#include "core/config.h"
#include "http/offload.h"
#include "http/server.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace wharf::registry {

// Sees each upload's bytes as they are handed to storage, in order, and how
// the upload ended (the squash indexes layers while they are pushed). No
// call may block: they run on I/O threads.
class UploadObserver {
 public:
  virtual ~UploadObserver() = default;
  virtual void appended(const std::string& id, uint64_t offset, const char* p, size_t n) = 0;
  // The upload became blob `digest` (verified) of `size` bytes.
  virtual void committed(const std::string& id, const std::string& digest, uint64_t size) = 0;
  // The upload is gone without a blob (deleted, expired, wrong digest).
  virtual void dropped(const std::string& id) = 0;
};

struct Options {
  // The configuration's sections the registry answers by, as they are
  // (core/config.h; a new setting there needs no edit here).
  core::DeleteConfig delete_;        // delete.enabled
  bool read_only = false;            // read_only: only GET and HEAD
  core::ManifestsConfig manifests;   // allow_sparse (OCI v1.1 sparse manifests), max_tags_per_push (414 beyond)
  core::UploadsConfig uploads;       // expiry_seconds of abandoned sessions
  core::LimitsConfig limits;         // max_manifest_bytes, page_size_max
  std::string external_url;  // overrides Host / X-Forwarded-* in Location headers
  // Access control; null: an open registry (every request allowed).
  auth::AccessControl* access = nullptr;
  // The three callbacks below run where the backend calls do (on the
  // Offload's threads when there is one), so they may read the stores.
  // Called after a manifest is deleted (e.g. to drop derived caches).
  std::function<void(const std::string& digest)> on_manifest_deleted;
  // Called after any manifest was pushed (image or index).
  std::function<void(const std::string& repo, const std::string& digest)> on_manifest_pushed;
  // Null: none.
  UploadObserver* upload_observer = nullptr;
  // Where blocking backend calls run (a database round trip, an object store
  // request), off the I/O threads; null: inline (the embedded backends).
  http::Offload* offload = nullptr;
  // Called after a tag was pushed (e.g. to prime derived caches). Must not throw.
  std::function<void(const std::string& repo, const std::string& tag)> on_tag_pushed;
};

class Registry {
 public:
  Registry(Options opts, storage::BlobStore& blobs, meta::MetadataStore& meta);
  ~Registry();

  // Answers one request whose path starts with /v2. Never throws for
  // protocol errors: they become the spec's JSON error responses.
  boost::asio::awaitable<void> handle(http::Exchange& ex);

  // Removes upload sessions idle longer than the expiry, with their bytes.
  // Returns how many were removed.
  size_t purge_expired_uploads();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wharf::registry
