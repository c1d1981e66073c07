#include "squash/index_codec.h"

#include <cstring>

namespace wharf::squash {

namespace {

void put_u64(std::string& o, uint64_t v) {  // LEB128
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    o += static_cast<char>(b | (v ? 0x80 : 0));
  } while (v);
}
void put_str(std::string& o, const std::string& s) {
  put_u64(o, s.size());
  o += s;
}

struct In {
  const std::string& s;
  size_t p = 0;
  bool ok = true;
  uint64_t u64() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= s.size()) {
        ok = false;
        return 0;
      }
      uint8_t b = static_cast<uint8_t>(s[p++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::string str() {
    uint64_t n = u64();
    if (!ok || n > s.size() - p) {
      ok = false;
      return {};
    }
    std::string r = s.substr(p, n);
    p += n;
    return r;
  }
};

constexpr char kMagic[4] = {'W', 'I', 'D', 'X'};

}  // namespace

std::string encode_index(const LayerIndex& idx) {
  std::string o(kMagic, 4);
  put_u64(o, kIndexFormat);
  put_u64(o, idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    const TarEntry e = idx.entry(i);
    put_str(o, e.path);
    put_str(o, e.link);
    o += static_cast<char>(e.type);
    put_u64(o, e.mode);
    put_u64(o, e.uid);
    put_u64(o, e.gid);
    put_str(o, e.uname);
    put_str(o, e.gname);
    put_u64(o, static_cast<uint64_t>(e.mtime));
    put_u64(o, e.mtime_nsec);
    put_u64(o, e.size);
    put_u64(o, e.devmajor);
    put_u64(o, e.devminor);
    put_u64(o, e.xattrs.size());
    for (const auto& [k, v] : e.xattrs) {
      put_str(o, k);
      put_str(o, v);
    }
    put_u64(o, e.data_offset);
  }
  const auto& cp = idx.checkpoints;
  put_u64(o, cp.chunks.size());
  for (const auto& c : cp.chunks) {
    put_u64(o, c.out);
    put_u64(o, c.in);
    put_str(o, c.in_sha256);
    put_u64(o, c.in_crc);
    put_u64(o, c.member_crc);
    put_u64(o, c.state_off);
    put_u64(o, c.state_len);
  }
  put_u64(o, cp.end_out);
  put_u64(o, cp.end_in);
  put_u64(o, cp.layout);
  put_str(o, cp.states_digest);
  put_str(o, cp.blob_stamp);
  return o;
}

std::optional<LayerIndex> decode_index(const std::string& bytes) {
  if (bytes.size() < 4 || std::memcmp(bytes.data(), kMagic, 4) != 0) return std::nullopt;
  In in{bytes, 4};
  if (in.u64() != kIndexFormat) return std::nullopt;
  uint64_t n = in.u64();
  if (!in.ok || n > bytes.size()) return std::nullopt;
  LayerIndex idx;
  idx.reserve(n, bytes.size());  // the strings take less than the encoded index; shrunk below
  TarEntry e;
  for (uint64_t i = 0; i < n && in.ok; ++i) {
    e.xattrs.clear();
    e.path = in.str();
    e.link = in.str();
    if (in.p >= bytes.size()) return std::nullopt;
    e.type = static_cast<EntryType>(bytes[in.p++]);
    e.mode = static_cast<uint32_t>(in.u64());
    e.uid = in.u64();
    e.gid = in.u64();
    e.uname = in.str();
    e.gname = in.str();
    e.mtime = static_cast<int64_t>(in.u64());
    e.mtime_nsec = static_cast<uint32_t>(in.u64());
    e.size = in.u64();
    e.devmajor = static_cast<uint32_t>(in.u64());
    e.devminor = static_cast<uint32_t>(in.u64());
    uint64_t nx = in.u64();
    if (nx > bytes.size()) return std::nullopt;
    for (uint64_t k = 0; k < nx && in.ok; ++k) {
      std::string key = in.str();
      e.xattrs.emplace_back(std::move(key), in.str());
    }
    e.data_offset = in.u64();
    if (!in.ok) return std::nullopt;
    try {
      idx.add(e);
    } catch (const LimitError&) {
      return std::nullopt;  // not an index this build writes
    }
  }
  idx.shrink();
  uint64_t nc = in.u64();
  if (!in.ok || nc > bytes.size() / 70) return std::nullopt;  // a chunk takes >= 70 bytes (its hex digest)
  auto& cp = idx.checkpoints;
  cp.chunks.resize(nc);
  for (auto& c : cp.chunks) {
    c.out = in.u64();
    c.in = in.u64();
    c.in_sha256 = in.str();
    c.in_crc = static_cast<uint32_t>(in.u64());
    c.member_crc = static_cast<uint32_t>(in.u64());
    c.state_off = in.u64();
    c.state_len = static_cast<uint32_t>(in.u64());
  }
  cp.end_out = in.u64();
  cp.end_in = in.u64();
  cp.layout = in.u64();
  cp.states_digest = in.str();
  cp.blob_stamp = in.str();
  if (!in.ok || in.p != bytes.size()) return std::nullopt;
  // A table that is not strictly increasing, or states with no blob, is not used.
  bool sane = nc != 1 && (nc == 0 || (!cp.states_digest.empty() && cp.chunks[0].out == 0 && cp.chunks[0].in == 0));
  for (size_t i = 1; i < nc && sane; ++i)
    sane = cp.chunks[i].out > cp.chunks[i - 1].out && cp.chunks[i].in >= cp.chunks[i - 1].in;
  if (nc && sane) sane = cp.end_out > cp.chunks.back().out && cp.end_in >= cp.chunks.back().in;
  for (size_t i = 0; i < nc && sane; ++i)  // bounded buffers and state reads
    sane = cp.chunk_len(i) <= kMaxInflateChunk && cp.chunks[i].state_len <= (1u << 20) &&
           cp.chunks[i].in_sha256.size() == 64;
  if (!sane) cp = InflateCheckpoints{};
  return idx;
}

uint64_t indexed_bytes(const LayerIndex& idx) {
  uint64_t end = 0;
  for (size_t i = 0; i < idx.size(); ++i) end = std::max(end, idx[i].data_offset + idx[i].size);
  return end;
}

}  // namespace wharf::squash
