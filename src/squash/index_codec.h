// squash/index_codec.h — the persisted per-layer index: every tar entry of a
// layer with its metadata and data offset, plus the layer's inflate
// checkpoints (without the saved states, which are a separate blob), so a later squash of any image
// using the layer skips the indexing pass (the layer is then decoded once).
// Versioned binary format; an index of another version is simply rebuilt.
#pragma once

#include <optional>
#include <string>

#include "squash/plan.h"

namespace wharf::squash {

// 2: inflate checkpoints (the table; the saved states are a blob of their own).
// 3: per chunk also the CRC-32 of its compressed bytes; the blob's stamp.
inline constexpr uint32_t kIndexFormat = 3;

std::string encode_index(const LayerIndex& idx);
// nullopt when the bytes are not an index of kIndexFormat (or are damaged).
std::optional<LayerIndex> decode_index(const std::string& bytes);
// Uncompressed bytes the layer's tar stream spans, as far as the index knows.
uint64_t indexed_bytes(const LayerIndex& idx);

}  // namespace wharf::squash
