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
// Integrity: each chunk records the SHA-256 and the CRC-32 of its compressed
// bytes and the gzip member's running CRC where it ends. open_chunk checks the
// SHA-256 (the index itself is verified by its digest, so this stands in for
// the layer's digest, which no single reader sees any more) — or, when the
// blob store vouches that the blob is unchanged since it was indexed and
// hashed (BlobStore::stamp), only the CRC-32, against accidental damage. A
// chunk from a damaged or altered blob fails with ChunkError instead of
// giving other bytes. Saved states carry a CRC and are range-checked before
// ISA-L sees them.
struct InflateChunk {
  uint64_t out = 0;         // uncompressed offset where the chunk starts
  uint64_t in = 0;          // compressed offset where its input starts
  std::string in_sha256;    // hex SHA-256 of the compressed bytes [in, next chunk's in or end_in)
  uint32_t in_crc = 0;      // CRC-32 of the same bytes
  uint32_t member_crc = 0;  // the gzip member's CRC of its output up to `out` (ISA-L state.crc)
  uint64_t state_off = 0;   // saved decoder state in the states blob (chunk 0: none)
  uint32_t state_len = 0;
};
// No chunk is longer than this (memory: one buffer per core, plus one); a
// layer that cannot be cut finer (a crafted stream of tiny gzip members, say)
// gets no checkpoints and decodes in one piece.
inline constexpr uint64_t kMaxInflateChunk = 16 << 20;

// A chunk that does not decode to what was indexed (damaged or altered blob,
// damaged saved state). The caller should drop the layer's index so that the
// next attempt re-indexes it from the digest-verified blob.
class ChunkError : public LayerError {
 public:
  explicit ChunkError(const std::string& what, uint32_t layer_index = UINT32_MAX)
      : LayerError(what), layer(layer_index) {}
  uint32_t layer;  // the layer's position in the image, when known
};

struct InflateCheckpoints {
  std::vector<InflateChunk> chunks;  // empty or >= 2: a layer too small to split has none
  uint64_t end_out = 0, end_in = 0;  // where the last chunk ends (end of the gzip stream)
  uint64_t layout = 0;               // which ISA-L build saved the states (inflate_layout())
  std::string states_digest;         // the blob holding the saved states, once stored
  std::string blob_stamp;            // BlobStore::stamp of the layer when it was indexed ("": none)
  std::shared_ptr<const std::string> states;  // the same bytes in memory, when just recorded
  // True when this build can decode the chunks (recorded by the same ISA-L layout).
  bool usable() const;
  // Bytes of chunk k.
  uint64_t chunk_len(size_t k) const { return (k + 1 < chunks.size() ? chunks[k + 1].out : end_out) - chunks[k].out; }
};

// Identifies the running ISA-L for saved states: sizeof(inflate_state) and the
// loaded library's file name (its version), so an upgraded library never
// resumes states an older one saved.
uint64_t inflate_layout();

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
// Yields exactly the chunk's bytes, then checks them (ChunkError on damage):
// the SHA-256 of its compressed bytes, or only their CRC-32 when `trusted`
// (the blob's stamp is the one it was indexed under).
std::unique_ptr<ByteSource> open_chunk(std::unique_ptr<storage::BlobReader> blob, const InflateCheckpoints& cps,
                                       size_t k, std::string_view state, bool trusted = false);

}  // namespace wharf::squash
