// squash/verifying_reader.h — a layer blob read ahead and checked against
// its digest.
#pragma once

#include <memory>

#include "core/digest.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// Reads a blob ahead on a thread of its own and verifies its digest: that
// thread copies the blob out of the page cache (or waits for the disk) and
// hashes it, 1 MiB at a time, a few MiB ahead of the reader, which usually
// inflates what it reads and so keeps its core to itself. The reader sees a
// LayerError at the end when the digest does not match. Indexing a 1 GB gzip
// layer: the copy out of the page cache was 13% of the indexing thread's time
// and the SHA-256 as much again (BENCHMARKS.md, 2026-11-27).
// Thread-safe to destroy at any point (the read-ahead thread is stopped and
// joined); read() is for one thread.
std::unique_ptr<storage::BlobReader> verifying_reader(std::unique_ptr<storage::BlobReader> in, core::Digest want);

// Reads exactly n bytes; false when the blob ends first.
bool read_exactly(storage::BlobReader& r, char* p, size_t n);

}  // namespace wharf::squash
