// storage/blob_store.h — content-addressed blob storage and upload staging.
//
// A BlobStore holds immutable blobs named by digest, plus staging areas for
// upload sessions that are being written. It knows nothing of repositories,
// metadata or HTTP: visibility of a blob in a repository is the metadata
// store's business. Drivers: filesystem (fs_blob_store.h), S3 (s3_blob_store.h).
//
// Contracts every driver keeps (checked by the shared driver test suite,
// tests/unit/blob_store_test.cc, which every driver registers with):
// - A blob is visible (stat/open succeed) only after commit_upload/put return,
//   and then its bytes are durable (fsynced / acknowledged by the store).
//   A crash at any moment leaves either no blob or the whole blob.
// - A staged upload is its id plus its driver state: opaque bytes the driver
//   hands out (create_upload, UploadWriter::state) and the caller stores with
//   its upload session and hands back. With them any process sharing the
//   store continues or commits the upload, after a restart too. The upload
//   holds exactly the bytes its state says: bytes of an append whose state
//   was never stored (a request that failed half-way) are not part of it.
// - Reading an upload before it is committed is a capability
//   (Capabilities::read_staged); callers keep what they need to go on without
//   it (the registry saves its digest state with the session).
// - The store never verifies digests itself; callers hash the bytes they
//   stream in (registry/) and commit only on a match.
// - The store does not arbitrate between a commit and a garbage collection of
//   the same digest: the metadata store does (MetadataStore::claim_blob_write),
//   so a driver needs no rename or lock for it.
// All methods are safe to call concurrently from several threads (one writer
// per upload at a time: the caller's rule); methods throw std::runtime_error
// on I/O failure.
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
  // The upload's driver state once close() returned: the state to store with
  // the session, covering every byte written. Before it is stored, the
  // session's old state still names the upload as it was.
  virtual std::string state() const = 0;
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
  // Stores small content whose digest the caller computed. Atomic and
  // durable. REQUIRES: the caller claimed the write (MetadataStore::claim_blob_write).
  virtual void put(const core::Digest& d, std::string_view bytes) = 0;
  // Removes the blob; absent is not an error. REQUIRES: for a blob that may
  // be in use, the metadata store marked it (MetadataStore::mark_blob_deleting).
  virtual void remove(const core::Digest& d) = 0;

  // A URL a client may GET the blob's bytes from directly (a presigned
  // object-store URL), or nullopt: the registry streams the bytes itself.
  virtual std::optional<std::string> redirect_url(const core::Digest& d) {
    (void)d;
    return std::nullopt;
  }

  // Garbage collection (wharf gc).
  struct BlobInfo {
    core::Digest digest;
    uint64_t size = 0;
    int64_t mtime = 0;  // unix seconds of the last (re)commit of the blob
  };
  // Calls fn for every stored blob (order unspecified).
  virtual void for_each_blob(const std::function<void(const BlobInfo&)>& fn) = 0;

  // What this driver can do beyond the contracts above.
  struct Capabilities {
    // read_upload works: an upload's bytes can be read before commit.
    bool read_staged = false;
    // The smallest chunk (PATCH body) the driver stores without waste, which
    // the registry advertises as OCI-Chunk-Min-Length; 0: any size.
    uint64_t chunk_min_length = 0;
  };
  virtual Capabilities capabilities() const = 0;

  // Upload staging. `id` is an opaque session id ([A-Za-z0-9-]); `state` the
  // upload's driver state as last handed out (see the contracts above).
  // Creates an empty upload; returns its state.
  virtual std::string create_upload(const std::string& id) = 0;
  // The upload's size as its state says, or nullopt when no such upload.
  virtual std::optional<uint64_t> upload_size(const std::string& id, std::string_view state) = 0;
  // Appends after the bytes `state` names. REQUIRES: the upload exists.
  virtual std::unique_ptr<UploadWriter> append_upload(const std::string& id, std::string_view state) = 0;
  // The bytes written to the upload so far, from `offset`: also those of a
  // writer still writing (each once its write() returned), whose state is not
  // stored yet, so the caller bounds what it reads by the size it knows.
  // REQUIRES: capabilities().read_staged.
  virtual std::unique_ptr<BlobReader> read_upload(const std::string& id, uint64_t offset = 0) = 0;
  // Turns the bytes `state` names into blob `d`, durably, and removes the
  // upload. If the blob exists already the staged copy replaces it (same
  // bytes). REQUIRES: the caller claimed the write (MetadataStore::claim_blob_write).
  virtual void commit_upload(const std::string& id, std::string_view state, const core::Digest& d) = 0;
  // Drops a staged upload; absent is not an error.
  virtual void delete_upload(const std::string& id, std::string_view state) = 0;
  // Cheap liveness probe for /health/endtoend: write, read back and remove a
  // small object. Throws on failure.
  virtual void probe() = 0;
};

}  // namespace wharf::storage
