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

// Persisted indexes (see index_codec.h). Both calls may run concurrently.
class IndexCache {
 public:
  virtual ~IndexCache() = default;
  virtual std::optional<LayerIndex> load(uint32_t layer) = 0;
  virtual void store(uint32_t layer, const LayerIndex& idx) = 0;
};

// Indexes every layer, at most `parallel` at a time, taking persisted
// indexes from `cache` where it has them (and storing new ones). Throws
// LayerError / LimitError (corrupt layers, limits) and std::runtime_error
// (missing blob).
std::vector<LayerIndex> index_layers(uint32_t layer_count, const LayerOpener& open, const Limits& limits,
                                     unsigned parallel, IndexCache* cache = nullptr);

// Receives the output bytes in order.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const char* data, size_t n) = 0;
};

// Writes the squashed layer.tar for `plan` (exactly plan.tar_size bytes).
// Verifies that every data entry still has the size its index recorded.
// With parallel > 1, layers are decoded on several threads: the calling
// thread writes layers front to back straight into `out` while helpers take
// layers from the back into spill files (in `spill_dir`), which are copied in
// when the front reaches them — CPU in parallel, memory bounded.
void write_layer(const std::vector<LayerIndex>& layers, const Plan& plan, const LayerOpener& open,
                 const Limits& limits, Sink& out, unsigned parallel = 1, const std::string& spill_dir = "/tmp");

}  // namespace wharf::squash
