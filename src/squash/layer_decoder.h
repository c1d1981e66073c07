// squash/layer_decoder.h — turns a layer blob into its uncompressed tar
// stream. The compression is chosen by the blob's magic bytes (gzip, zstd,
// or none), never by the media type. gzip is inflated with ISA-L (several
// members are read one after the other), zstd with libzstd under a window
// limit so memory stays bounded.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "squash/limits.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// A blocking byte stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes; 0 at the end. Throws LayerError on corrupt input.
  virtual size_t read(char* buf, size_t n) = 0;
  // Zero-copy read for sources that hold their bytes in memory: points *p at
  // up to n next bytes (valid until the next call) and returns how many; 0
  // means "use read()" (not supported, or at a boundary), not the end.
  virtual size_t view(const char** p, size_t n) {
    (void)p;
    (void)n;
    return 0;
  }
};

enum class Compression { None, Gzip, Zstd };

// Inflate checkpoints of a gzip layer, so that one large layer can be
// decoded on several cores (the zran idea, with ISA-L). The layer's
// uncompressed stream is cut into chunks; chunk k starts at uncompressed
// offset chunks[k].out and compressed offset chunks[k].in, where decoding
// resumes from a saved ISA-L state (the 32 KiB history and the current
// block's Huffman tables). They are recorded while the layer is indexed
// (open_layer with a recorder) and kept with the persisted index.
//
// Integrity: each chunk records the CRC-32 of its compressed bytes and the
// gzip member's running CRC where it ends, and open_chunk checks both, so a
// chunk decoded from a damaged blob (or from a state this build of ISA-L
// cannot use) fails with LayerError instead of giving other bytes.
struct InflateChunk {
  uint64_t out = 0;         // uncompressed offset where the chunk starts
  uint64_t in = 0;          // compressed offset where its input starts
  uint32_t in_crc = 0;      // CRC-32 of the compressed bytes [in, next chunk's in or end_in)
  uint32_t member_crc = 0;  // the gzip member's CRC of its output up to `out` (ISA-L state.crc)
  uint64_t state_off = 0;   // saved decoder state in the states blob (chunk 0: none)
  uint32_t state_len = 0;
};
struct InflateCheckpoints {
  std::vector<InflateChunk> chunks;  // empty or >= 2: a layer too small to split has none
  uint64_t end_out = 0, end_in = 0;  // where the last chunk ends (end of the gzip stream)
  uint64_t layout = 0;               // ISA-L's sizeof(inflate_state) when recorded
  std::string states_digest;         // the blob holding the saved states, once stored
  std::shared_ptr<const std::string> states;  // the same bytes in memory, when just recorded
  // True when this build can decode the chunks (recorded by the same ISA-L layout).
  bool usable() const;
};

// Opens the decoder over `blob`; takes ownership. `uncompressed_budget`
// (shared by the layers of one image, may be null) is decremented as bytes
// come out; crossing zero throws LimitError. With `record` (and a gzip blob),
// a checkpoint is recorded roughly every `spacing` uncompressed bytes; the
// record is complete once the source has returned 0.
std::unique_ptr<ByteSource> open_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits,
                                       std::atomic<int64_t>* uncompressed_budget, Compression* detected = nullptr,
                                       InflateCheckpoints* record = nullptr, uint64_t spacing = 0);

// Chunk k of a checkpointed gzip layer: `blob` reads the layer from
// cps.chunks[k].in, `state` is the chunk's saved state (empty for chunk 0).
// Yields exactly the chunk's bytes, then checks them (LayerError on damage).
std::unique_ptr<ByteSource> open_chunk(std::unique_ptr<storage::BlobReader> blob, const InflateCheckpoints& cps,
                                       size_t k, std::string_view state);

}  // namespace wharf::squash
