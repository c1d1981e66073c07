// storage/fs_blob_store.h — the filesystem driver of storage/blob_store.h
// (the embedded default; target wharf_storage_fs).
#pragma once

#include <memory>
#include <string>

#include "storage/blob_store.h"

namespace wharf::storage {

// Filesystem driver rooted at `root` (blobs/<algo>/<2 hex>/<hex>, uploads/<id>).
// `drop_committed`: once an upload is committed (fsynced), evict its pages
// from the page cache so the next upload reuses that memory instead of
// touching fresh pages (10 MiB pushes 320 -> 790 MB/s on the 2-core VM,
// BENCHMARKS.md); the first read of a new blob then comes from disk.
std::unique_ptr<BlobStore> make_fs_blob_store(const std::string& root, bool drop_committed = true);

}  // namespace wharf::storage
