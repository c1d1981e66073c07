// squash/stored_indexes.h — persisted layer indexes, and the coordination
// that lets one thread of the process index a layer while others wait for it.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "meta/metadata_store.h"
#include "squash/build.h"
#include "storage/blob_store.h"

namespace wharf::squash {

// Layers being indexed by some thread of this process (by digest): another
// thread that needs one waits for that index instead of decoding the layer a
// second time (a pull right after a push meets the background indexing).
// `layers` is guarded by `mu`; `cv` is notified whenever one leaves it.
struct LayersBeingIndexed {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> layers;
};

// Stores `idx` as the persisted index of `layer` (its saved inflate states a
// blob of their own); `stamp`: the blob's BlobStore::stamp taken before it
// was read. Failures are quiet: an index that cannot be stored is rebuilt.
void persist_index(storage::BlobStore& blobs, meta::MetadataStore& meta, const std::string& layer, LayerIndex& idx,
                   const std::string& stamp);

// Persisted layer indexes: blobs named by their digest, found through the
// metadata store by layer digest. A miss claims the layer in `indexing`
// until store() or abandon(); a load() of a claimed layer waits for it. A
// thread holds at most one claim and never waits while holding it.
// One StoredIndexes per image being indexed, used by that image's indexing
// threads at once (index_layers calls load/store/abandon concurrently).
class StoredIndexes : public IndexCache {
 public:
  StoredIndexes(storage::BlobStore& b, meta::MetadataStore& m, const std::vector<std::string>& layers,
                LayersBeingIndexed& indexing)
      : blobs_(b), meta_(m), layers_(layers), indexing_(indexing) {}
  ~StoredIndexes() override;
  std::optional<LayerIndex> load(uint32_t i) override;
  void abandon(uint32_t i) override { release(i); }
  void store(uint32_t i, LayerIndex& idx) override;

 private:
  void release(uint32_t i);
  std::optional<LayerIndex> load_stored(uint32_t i);

  storage::BlobStore& blobs_;
  meta::MetadataStore& meta_;
  const std::vector<std::string>& layers_;
  LayersBeingIndexed& indexing_;
  std::set<uint32_t> claimed_;  // by this build; guarded by indexing_.mu
  std::map<uint32_t, std::string> stamps_;  // of the claimed layers, taken before indexing; same guard
};

}  // namespace wharf::squash
