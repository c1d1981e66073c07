#include "squash/layer_index.h"

#include <cstring>

namespace wharf::squash {

namespace {

void put_u32(std::string& o, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  o.append(b, 4);
}
void put_u64(std::string& o, uint64_t v) {
  put_u32(o, static_cast<uint32_t>(v));
  put_u32(o, static_cast<uint32_t>(v >> 32));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
uint64_t get_u64(const char* p) { return get_u32(p) | (uint64_t{get_u32(p + 4)} << 32); }

}  // namespace

uint16_t LayerIndex::name_id(const std::string& name) {
  if (name_ids_.empty())  // freed by shrink(): rebuilt from the table
    for (size_t i = 0; i < names_.size(); ++i) name_ids_.emplace(names_[i], static_cast<uint16_t>(i));
  if (auto it = name_ids_.find(name); it != name_ids_.end()) return it->second;
  if (names_.size() > UINT16_MAX) throw LimitError("a layer has more than 65536 distinct user and group names");
  auto id = static_cast<uint16_t>(names_.size());
  names_.push_back(name);
  name_ids_.emplace(name, id);
  return id;
}

void LayerIndex::add(const TarEntry& e) {
  if (e.path.size() > UINT16_MAX || e.link.size() > UINT16_MAX)
    throw LimitError("a path or link target is longer than 65535 bytes (squash.limits.max_path_bytes)");
  IndexEntry r;
  r.data_offset = e.data_offset;
  r.size = e.size;
  r.mtime = e.mtime;
  r.mtime_nsec = e.mtime_nsec;
  r.mode = static_cast<uint16_t>(e.mode & 07777);
  r.type = e.type;
  r.uname = name_id(e.uname);
  r.gname = name_id(e.gname);
  size_t start = arena_.size();
  r.str = static_cast<uint32_t>(start);
  r.path_len = static_cast<uint16_t>(e.path.size());
  r.link_len = static_cast<uint16_t>(e.link.size());
  arena_ += e.path;
  arena_ += e.link;
  for (const auto& [k, v] : e.xattrs) {
    put_u32(arena_, static_cast<uint32_t>(k.size()));
    arena_ += k;
    put_u32(arena_, static_cast<uint32_t>(v.size()));
    arena_ += v;
  }
  r.xattr_len = static_cast<uint32_t>(arena_.size() - start - e.path.size() - e.link.size());
  if (e.uid >= UINT32_MAX || e.gid >= UINT32_MAX) {
    r.flags |= IndexEntry::kWideIds;
    put_u64(arena_, e.uid);
    put_u64(arena_, e.gid);
  } else {
    r.uid = static_cast<uint32_t>(e.uid);
    r.gid = static_cast<uint32_t>(e.gid);
  }
  if (e.devmajor || e.devminor) {
    r.flags |= IndexEntry::kDevice;
    put_u32(arena_, e.devmajor);
    put_u32(arena_, e.devminor);
  }
  if (arena_.size() > UINT32_MAX) {
    arena_.resize(start);
    throw LimitError("a layer's paths, link targets and xattrs take more than 4 GiB");
  }
  entries_.push_back(r);
}

void LayerIndex::reserve(size_t entries, size_t arena_bytes) {
  entries_.reserve(entries_.size() + entries);
  arena_.reserve(arena_.size() + arena_bytes);
}

void LayerIndex::shrink() {
  entries_.shrink_to_fit();
  arena_.shrink_to_fit();
  std::unordered_map<std::string, uint16_t>().swap(name_ids_);  // only add() needs it
}

TarEntry LayerIndex::entry(size_t i) const {
  const auto& r = entries_[i];
  TarEntry e;
  e.path = path(i);
  e.link = link(i);
  e.type = r.type;
  e.mode = r.mode;
  e.uname = names_[r.uname];
  e.gname = names_[r.gname];
  e.mtime = r.mtime;
  e.mtime_nsec = r.mtime_nsec;
  e.size = r.size;
  e.data_offset = r.data_offset;
  const char* p = arena_.data() + r.str + r.path_len + r.link_len;
  const char* end = p + r.xattr_len;
  while (p < end) {
    uint32_t kn = get_u32(p);
    std::string k(p + 4, kn);
    p += 4 + kn;
    uint32_t vn = get_u32(p);
    e.xattrs.emplace_back(std::move(k), std::string(p + 4, vn));
    p += 4 + vn;
  }
  if (r.flags & IndexEntry::kWideIds) {
    e.uid = get_u64(p);
    e.gid = get_u64(p + 8);
    p += 16;
  } else {
    e.uid = r.uid;
    e.gid = r.gid;
  }
  if (r.flags & IndexEntry::kDevice) {
    e.devmajor = get_u32(p);
    e.devminor = get_u32(p + 4);
  }
  return e;
}

size_t LayerIndex::memory_bytes() const {
  size_t n = entries_.capacity() * sizeof(IndexEntry) + arena_.capacity();
  for (const auto& s : names_) n += sizeof(s) + s.capacity();
  return n;
}

}  // namespace wharf::squash
