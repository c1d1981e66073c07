// squash/layer_index.h — a layer's tar entries as the squash holds them in
// memory: one fixed 56-byte record per entry and one arena for all their
// strings (a vector of TarEntry cost ~210 bytes plus heap strings per entry;
// 10^6 entries are now 56 MB plus their path bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "squash/layer_decoder.h"
#include "squash/tar.h"

namespace wharf::squash {

// One entry. Its strings are in the index's arena from `str` on: the path,
// the link target, the xattr block (per xattr: u32 name length, name, u32
// value length, value; little-endian), then the wide fields when flagged
// (kWideIds: u64 uid, u64 gid; kDevice: u32 devmajor, u32 devminor).
struct IndexEntry {
  uint64_t data_offset = 0;  // where the data starts in the uncompressed stream
  uint64_t size = 0;         // data bytes (regular files only)
  int64_t mtime = 0;
  uint32_t str = 0;          // arena offset
  uint32_t xattr_len = 0;    // bytes of the xattr block
  uint32_t uid = 0, gid = 0; // with kWideIds: in the arena instead
  uint32_t mtime_nsec = 0;
  uint16_t path_len = 0, link_len = 0;
  uint16_t uname = 0, gname = 0;  // into the index's name table
  uint16_t mode = 0;              // permission bits (07777)
  EntryType type = EntryType::File;
  uint8_t flags = 0;
  static constexpr uint8_t kWideIds = 1, kDevice = 2;
};
static_assert(sizeof(IndexEntry) == 56);

class LayerIndex {
 public:
  LayerIndex() = default;
  explicit LayerIndex(const std::vector<TarEntry>& entries) {
    for (const auto& e : entries) add(e);
  }

  // Appends an entry. Throws LimitError when a path or link is over 65535
  // bytes, the arena over 4 GiB or the layer has over 65535 distinct
  // user/group names.
  void add(const TarEntry& e);
  // Room for `entries` more entries and `arena_bytes` more string bytes.
  void reserve(size_t entries, size_t arena_bytes);
  // Gives back what growing left unused and the name lookup (after the
  // last add(); a later add() still works).
  void shrink();

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const IndexEntry& operator[](size_t i) const { return entries_[i]; }
  std::string_view path(size_t i) const {
    const auto& e = entries_[i];
    return {arena_.data() + e.str, e.path_len};
  }
  std::string_view link(size_t i) const {
    const auto& e = entries_[i];
    return {arena_.data() + e.str + e.path_len, e.link_len};
  }
  EntryType type(size_t i) const { return entries_[i].type; }
  // The whole entry, strings copied.
  TarEntry entry(size_t i) const;
  // Heap bytes this index holds.
  size_t memory_bytes() const;

  InflateCheckpoints checkpoints;  // gzip layers large enough to split; see layer_decoder.h

 private:
  uint16_t name_id(const std::string& name);

  std::vector<IndexEntry> entries_;
  std::string arena_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint16_t> name_ids_;
};

}  // namespace wharf::squash
