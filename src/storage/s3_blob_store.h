// storage/s3_blob_store.h — the S3 driver (target wharf_storage_s3): blobs
// and upload staging in an S3-compatible object store (tested on Ceph RADOS
// Gateway), for several wharf processes sharing one bucket. The layout and
// the upload scheme are in storage/README.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/blob_store.h"
#include "storage/s3_client.h"

namespace wharf::storage {

struct S3StoreOptions {
  s3::Options client;
  std::string prefix;                // keys start with it ("" or ending in '/')
  uint64_t part_size = 16ull << 20;  // multipart part size; doubles every 1000 parts
  uint64_t read_chunk = 8ull << 20;  // a blob reader fetches ahead of its caller up to this many bytes
  std::string redirect;              // "presigned": blob GETs redirect to a presigned URL; "proxy": streamed
  int64_t presign_ttl_seconds = 600;
  int abort_incomplete_uploads_days = 1;  // lifecycle rule on <prefix>uploads/ (0: none set)
};

// Checks the bucket (a clear error when it is missing or the credentials are
// refused) and sets the lifecycle rule; throws std::runtime_error.
std::unique_ptr<BlobStore> make_s3_blob_store(const S3StoreOptions& o);

}  // namespace wharf::storage
