// squash/build.h — the two passes of a squash over an image's layers:
// indexing (every tar entry of every layer, layers decoded in parallel) and
// writing the squashed layer.tar by decoding each layer once, front to back.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "squash/plan.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// Opens layer `i` (bottom-up) of the image; nullptr when the blob is missing.
using LayerOpener = std::function<std::unique_ptr<storage::BlobReader>(uint32_t i)>;

// Default distance between inflate checkpoints: small enough that a chunk
// buffer per core stays a few MiB, large enough that the saved states (~20 KB
// each) are ~0.5% of the layer.
inline constexpr uint64_t kCheckpointSpacing = 4 << 20;

// Persisted indexes (see index_codec.h). Both calls may run concurrently.
// store() also persists the inflate checkpoints' saved states and records
// their blob in idx.checkpoints.states_digest.
class IndexCache {
 public:
  virtual ~IndexCache() = default;
  virtual std::optional<LayerIndex> load(uint32_t layer) = 0;
  virtual void store(uint32_t layer, LayerIndex& idx) = 0;
  // After load() missed, indexing the layer failed: store() will not come.
  virtual void abandon(uint32_t layer) { (void)layer; }
};

// Told the bytes an index pass is about to hold beyond what it told before
// (as indexes grow, every few thousand entries, and for each loaded index);
// throws to stop the pass. Called from several threads at once.
using MemoryCharge = std::function<void(uint64_t bytes)>;

// Indexes every layer, at most `parallel` at a time, taking persisted
// indexes from `cache` where it has them (and storing new ones). gzip layers
// get inflate checkpoints every `checkpoint_spacing` uncompressed bytes (0:
// none). Throws LayerError / LimitError (corrupt layers, limits),
// std::runtime_error (missing blob) and what `charge` throws.
std::vector<LayerIndex> index_layers(uint32_t layer_count, const LayerOpener& open, const Limits& limits,
                                     unsigned parallel, IndexCache* cache = nullptr,
                                     uint64_t checkpoint_spacing = kCheckpointSpacing,
                                     const MemoryCharge* charge = nullptr);

// One layer's index from its blob (what index_layers does per layer),
// within `limits` for this layer alone.
LayerIndex index_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits, uint64_t checkpoint_spacing,
                       const MemoryCharge* charge = nullptr);

// What the writer needs to decode checkpointed layers in chunks.
struct ChunkAccess {
  // Layer `layer`'s blob from `offset`, unverified (chunks check themselves).
  std::function<std::unique_ptr<storage::BlobReader>(uint32_t layer, uint64_t offset)> open_at;
  // `len` bytes at `offset` of blob `digest` (saved inflate states).
  std::function<std::string(const std::string& digest, uint64_t offset, uint64_t len)> read_blob;
  // True when layer `layer`'s blob still has `stamp` (BlobStore::stamp): its
  // chunks are then checked by CRC-32 instead of SHA-256. Optional.
  std::function<bool(uint32_t layer, const std::string& stamp)> unchanged;
};

// Receives the output bytes in order.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const char* data, size_t n) = 0;
};

// Writes the squashed layer.tar for `plan` (exactly plan.tar_size bytes).
// Verifies that every data entry still has the size its index recorded.
// With parallel > 1, layers are decoded on several threads:
// - when at least 3/4 of the bytes are in layers with usable inflate
//   checkpoints (and `chunks` is given), `parallel` helpers decode the chunks
//   of those layers ahead, in output order, into a few recycled buffers
//   (memory: parallel+1 chunks) that the calling thread consumes; other
//   layers it decodes itself meanwhile;
// - otherwise the calling thread writes layers front to back straight into
//   `out` while helpers take layers from the back into spill files (in
//   `spill_dir`), copied in when the front reaches them.
void write_layer(const std::vector<LayerIndex>& layers, const Plan& plan, const LayerOpener& open,
                 const Limits& limits, Sink& out, unsigned parallel = 1, const std::string& spill_dir = "/tmp",
                 const ChunkAccess* chunks = nullptr);

}  // namespace wharf::squash
