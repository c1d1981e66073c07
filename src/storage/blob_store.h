// storage/blob_store.h — content-addressed blob storage and upload staging.
//
// A BlobStore holds immutable blobs named by digest, plus staging areas for
// upload sessions that are being written. It knows nothing of repositories,
// metadata or HTTP: visibility of a blob in a repository is the metadata
// store's business. Drivers: filesystem (fs_blob_store.h); S3 later.
//
// Contracts every driver keeps (checked by the shared driver test suite):
// - A blob is visible (stat/open succeed) only after commit_upload/put return,
//   and then its bytes are durable (fsynced / acknowledged by the store).
//   A crash at any moment leaves either no blob or the whole blob.
// - Staged uploads survive restarts and are reachable from any process
//   sharing the store: their state is the staged bytes alone.
// - The store never verifies digests itself; callers hash the bytes they
//   stream in (registry/) and commit only on a match.
// All methods are safe to call concurrently from several threads; methods
// throw std::runtime_error on I/O failure.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/digest.h"

namespace wharf::storage {

// Sequential reader over a blob or a staged upload.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Bytes from the open offset to the end.
  virtual uint64_t remaining() const = 0;
  // Reads up to n bytes; returns 0 at the end.
  virtual size_t read(char* buf, size_t n) = 0;
  // A local file descriptor and the current offset in it, for sendfile; -1
  // when the driver has no local file. The reader keeps ownership.
  virtual int native_fd() const { return -1; }
  virtual uint64_t native_offset() const { return 0; }
};

// Appends to a staged upload.
class UploadWriter {
 public:
  virtual ~UploadWriter() = default;
  virtual void write(const char* data, size_t n) = 0;
  // Flushes what was written (not necessarily to stable storage; commit does that).
  virtual void close() = 0;
  // Lets the writer evict what it wrote more than `lag` bytes before the end
  // from memory once it is on disk (readers then read it back from disk). For
  // long streams whose readers follow closely: recycling the same memory is
  // cheaper than touching fresh pages. Default: nothing.
  virtual void drop_behind(uint64_t lag) { (void)lag; }
  // Says the bytes will not be read back soon: the driver may write them
  // around its cache (the fs driver: O_DIRECT for 4 KiB-aligned buffers at
  // aligned offsets, when the store drops committed pages anyway). Such a
  // write returns once the device has the bytes, so write from a thread
  // that may wait (AsyncWriter's write thread). Default: nothing.
  virtual void bypass_cache() {}
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Size of the blob, or nullopt when absent.
  virtual std::optional<uint64_t> stat(const core::Digest& d) = 0;
  // An opaque value that changes whenever the stored bytes of `d` may have
  // changed (filesystem: device, inode, size, mtime and ctime — no write
  // through the filesystem keeps them all; S3: the ETag and version), so a
  // caller that verified the bytes under one stamp may skip hashing them
  // again under the same stamp. nullopt when absent or not supported.
  virtual std::optional<std::string> stamp(const core::Digest& d) {
    (void)d;
    return std::nullopt;
  }
  // Opens the blob at `offset`; nullptr when absent. REQUIRES: offset <= size.
  virtual std::unique_ptr<BlobReader> open(const core::Digest& d, uint64_t offset = 0) = 0;
  // Stores small content whose digest the caller computed. Atomic and durable.
  virtual void put(const core::Digest& d, std::string_view bytes) = 0;
  // Removes the blob; absent is not an error.
  virtual void remove(const core::Digest& d) = 0;

  // Garbage collection (wharf gc).
  struct BlobInfo {
    core::Digest digest;
    uint64_t size = 0;
    int64_t mtime = 0;  // unix seconds of the last (re)commit of the blob
  };
  // Calls fn for every stored blob (order unspecified).
  virtual void for_each_blob(const std::function<void(const BlobInfo&)>& fn) = 0;
  // Removes blob `d` unless it was (re)committed at or after `cutoff` or
  // `still_used()` says it is referenced, both judged after the blob was set
  // aside: a commit of the same digest racing with the collection is never
  // lost (commits always write a fresh copy, see commit_upload). Returns true
  // when the copy it set aside was removed.
  virtual bool collect(const core::Digest& d, int64_t cutoff, const std::function<bool()>& still_used) = 0;

  // Upload staging. `id` is an opaque session id ([A-Za-z0-9-]).
  virtual void create_upload(const std::string& id) = 0;
  // Staged size, or nullopt when no such upload.
  virtual std::optional<uint64_t> upload_size(const std::string& id) = 0;
  // Appends at the current end. REQUIRES: the upload exists.
  virtual std::unique_ptr<UploadWriter> append_upload(const std::string& id) = 0;
  // Reads the staged bytes from `offset`.
  virtual std::unique_ptr<BlobReader> read_upload(const std::string& id, uint64_t offset = 0) = 0;
  // Turns the staged bytes into blob `d`, durably, and removes the staging
  // area. If the blob exists already the staged copy replaces it (same
  // bytes), so a blob just committed always looks fresh to collect().
  virtual void commit_upload(const std::string& id, const core::Digest& d) = 0;
  // Drops a staged upload; absent is not an error.
  virtual void delete_upload(const std::string& id) = 0;
  // Cheap liveness probe for /health/endtoend: write, read back and remove a
  // small object. Throws on failure.
  virtual void probe() = 0;
};

}  // namespace wharf::storage
