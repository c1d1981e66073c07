#include "squash/stored_indexes.h"

#include "core/digest.h"
#include "core/metrics.h"
#include "squash/index_codec.h"
#include "squash/verifying_reader.h"

namespace wharf::squash {

void persist_index(storage::BlobStore& blobs, meta::MetadataStore& meta, const std::string& layer, LayerIndex& idx,
                   const std::string& stamp) {
  core::Metrics::global().add("wharf_squash_layers_indexed_total");
  try {
    auto& cp = idx.checkpoints;
    if (!stamp.empty() && !cp.chunks.empty()) cp.blob_stamp = stamp;
    if (cp.states && !cp.states->empty()) {
      auto sd = core::sha256_of(*cp.states);
      meta.claim_blob_write(sd.str());
      blobs.put(sd, *cp.states);
      cp.states_digest = sd.str();
    }
    std::string bytes = encode_index(idx);
    auto d = core::sha256_of(bytes);
    meta.claim_blob_write(d.str());
    blobs.put(d, bytes);
    meta.put_layer_index({layer, kIndexFormat, d.str(), idx.size(), cp.states_digest});
  } catch (const std::exception&) {
    // an index that cannot be stored is rebuilt next time
  }
}

std::optional<LayerIndex> StoredIndexes::load(uint32_t i) {
  {
    std::unique_lock lk(indexing_.mu);
    indexing_.cv.wait(lk, [&] { return !indexing_.layers.count(layers_[i]); });
  }
  if (auto idx = load_stored(i)) return idx;
  std::lock_guard lk(indexing_.mu);
  // Claimed by another thread between the wait and this check (rare): index
  // it here too rather than wait again; both give the same index.
  if (indexing_.layers.count(layers_[i])) return std::nullopt;
  indexing_.layers.insert(layers_[i]);
  claimed_.insert(i);
  // Taken before the bytes are read and hashed: a later squash that finds
  // the same stamp may check the chunks by CRC-32 only.
  if (auto d = core::Digest::parse(layers_[i]))
    if (auto st = blobs_.stamp(*d)) stamps_[i] = *st;
  return std::nullopt;
}

void StoredIndexes::store(uint32_t i, LayerIndex& idx) {
  struct Release {
    StoredIndexes* s;
    uint32_t i;
    ~Release() { s->release(i); }
  } release{this, i};
  std::string stamp;
  {
    std::lock_guard lk(indexing_.mu);
    if (auto it = stamps_.find(i); it != stamps_.end()) stamp = it->second;
  }
  persist_index(blobs_, meta_, layers_[i], idx, stamp);
}

StoredIndexes::~StoredIndexes() {
  for (uint32_t i : std::set<uint32_t>(claimed_)) release(i);
}

void StoredIndexes::release(uint32_t i) {
  std::lock_guard lk(indexing_.mu);
  if (claimed_.erase(i)) indexing_.layers.erase(layers_[i]);
  indexing_.cv.notify_all();
}

std::optional<LayerIndex> StoredIndexes::load_stored(uint32_t i) {
  auto rec = meta_.get_layer_index(layers_[i]);
  if (!rec || rec->format != kIndexFormat) return std::nullopt;
  auto d = core::Digest::parse(rec->index_digest);
  auto r = d ? blobs_.open(*d) : nullptr;
  if (!r) return std::nullopt;
  std::string bytes(r->remaining(), '\0');
  if (!read_exactly(*r, bytes.data(), bytes.size())) return std::nullopt;
  if (core::digest_of(d->algorithm(), bytes) != *d) return std::nullopt;
  core::Metrics::global().add("wharf_squash_index_hits_total");
  auto idx = decode_index(bytes);
  if (idx && !idx->checkpoints.states_digest.empty()) {  // states gone: decode that layer on one core
    auto sd = core::Digest::parse(idx->checkpoints.states_digest);
    if (!sd || !blobs_.stat(*sd)) idx->checkpoints = InflateCheckpoints{};
  }
  return idx;
}

}  // namespace wharf::squash
