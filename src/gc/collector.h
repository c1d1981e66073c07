// gc/collector.h — garbage collection of blobs, safe while every replica
// serves pushes and pulls (see README.md for the design and why).
//
// One collection: every stored blob is reviewed; one that nothing references
// in the metadata store (no repository link, no stored manifest, no squash
// cache entry or layer index: MetadataStore::blob_in_use) and that was
// committed before the grace period is marked and removed through
// MetadataStore::remove_blob_if_unused, whose mark is a compare-and-swap
// refused while anything references the blob or since it was (re)written;
// a commit of the same digest meanwhile waits for the removal
// (claim_blob_write). Layer indexes of layers no longer stored are then
// forgotten and a second pass takes their blobs.
//
// Thread-safe as the stores are; several collections at once (two replicas,
// a `wharf gc` beside a schedule) are correct, only wasteful: the server
// runs its schedule once in the cluster (cluster/periodic.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace wharf::gc {

struct Options {
  int64_t grace_seconds = 3600;  // only blobs committed longer ago than this are candidates
  bool dry_run = false;          // review and report; remove nothing
  // Called for each blob removed (or, dry run, that would be), e.g. to list it.
  std::function<void(const storage::BlobStore::BlobInfo&)> on_removed;
};

struct Result {
  uint64_t reviewed = 0, kept = 0, removed = 0;  // blobs
  uint64_t reviewed_bytes = 0, kept_bytes = 0, removed_bytes = 0;
  uint64_t indexes_forgotten = 0;  // layer indexes of layers no longer stored
};

// Runs one collection and adds its figures to /metrics
// (wharf_gc_blobs_total{outcome="reviewed|kept|removed"},
// wharf_gc_bytes_total{...}, wharf_gc_runs_total; not for a dry run).
// Throws what the stores throw; what was removed before stays removed.
Result collect(storage::BlobStore& blobs, meta::MetadataStore& meta, const Options& o);

}  // namespace wharf::gc
