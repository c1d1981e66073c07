// squash/layer_decoder.h — turns a layer blob into its uncompressed tar
// stream. The compression is chosen by the blob's magic bytes (gzip, zstd,
// or none), never by the media type. gzip is inflated with ISA-L (several
// members are read one after the other), zstd with libzstd under a window
// limit so memory stays bounded.
#pragma once

#include <atomic>
#include <memory>

#include "squash/limits.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// A blocking byte stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes; 0 at the end. Throws LayerError on corrupt input.
  virtual size_t read(char* buf, size_t n) = 0;
};

enum class Compression { None, Gzip, Zstd };

// Opens the decoder over `blob`; takes ownership. `uncompressed_budget`
// (shared by the layers of one image, may be null) is decremented as bytes
// come out; crossing zero throws LimitError.
std::unique_ptr<ByteSource> open_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits,
                                       std::atomic<int64_t>* uncompressed_budget, Compression* detected = nullptr);

}  // namespace wharf::squash
