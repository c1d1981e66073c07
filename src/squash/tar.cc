#include "squash/tar.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

namespace wharf::squash {

namespace {

constexpr size_t kBlock = 512;

// ustar header field offsets
struct F {
  size_t off, len;
};
constexpr F kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12}, kMtime{136, 12},
    kChksum{148, 8}, kType{156, 1}, kLink{157, 100}, kMagic{257, 6}, kVersion{263, 2}, kUname{265, 32},
    kGname{297, 32}, kDevMajor{329, 8}, kDevMinor{337, 8}, kPrefix{345, 155};

std::string_view field_str(const char* h, F f) {
  const char* p = h + f.off;
  size_t n = strnlen(p, f.len);
  return {p, n};
}

// Octal (possibly space/NUL padded) or GNU base-256 numbers.
uint64_t field_num(const char* h, F f, bool* ok) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(h + f.off);
  if (p[0] & 0x80) {
    if (p[0] == 0xff) {  // negative base-256 (GNU tar's pre-1970 mtimes): two's complement
      int64_t v = -1;
      for (size_t i = 1; i < f.len; ++i) v = static_cast<int64_t>(static_cast<uint64_t>(v) << 8) | p[i];
      return static_cast<uint64_t>(v);
    }
    uint64_t v = p[0] & 0x7f;
    for (size_t i = 1; i < f.len; ++i) {
      if (v >> 56) {
        *ok = false;
        return 0;
      }
      v = (v << 8) | p[i];
    }
    return v;
  }
  size_t i = 0;
  while (i < f.len && (p[i] == ' ' || p[i] == 0)) ++i;
  uint64_t v = 0;
  bool any = false;
  for (; i < f.len && p[i] >= '0' && p[i] <= '7'; ++i) {
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < f.len; ++i)
    if (p[i] != ' ' && p[i] != 0) *ok = false;
  (void)any;
  return v;
}

bool checksum_ok(const char* h) {
  bool ok = true;
  uint64_t want = field_num(h, kChksum, &ok);
  if (!ok) return false;
  uint64_t sum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    unsigned char c = (i >= kChksum.off && i < kChksum.off + kChksum.len) ? ' ' : static_cast<unsigned char>(h[i]);
    sum += c;
    ssum += static_cast<signed char>(c);
  }
  return want == sum || static_cast<int64_t>(want) == ssum;
}

bool all_zero(const char* h) {
  for (size_t i = 0; i < kBlock; ++i)
    if (h[i]) return false;
  return true;
}

bool parse_u64(std::string_view s, uint64_t& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// PAX "mtime=1234.5678" -> seconds and nanoseconds.
bool parse_pax_time(std::string_view s, int64_t& sec, uint32_t& nsec) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  auto dot = s.find('.');
  uint64_t whole = 0;
  if (!parse_u64(s.substr(0, dot), whole)) return false;
  uint32_t frac = 0;
  if (dot != std::string_view::npos) {
    auto f = s.substr(dot + 1);
    for (size_t i = 0; i < 9; ++i) {
      frac *= 10;
      if (i < f.size()) {
        if (f[i] < '0' || f[i] > '9') return false;
        frac += f[i] - '0';
      }
    }
  }
  if (neg) {  // -1.25 means 1.25 s before the epoch
    sec = -static_cast<int64_t>(whole);
    if (frac) {
      sec -= 1;
      frac = 1000000000 - frac;
    }
  } else {
    sec = static_cast<int64_t>(whole);
  }
  nsec = frac;
  return true;
}

}  // namespace

bool clean_path(std::string_view in, std::string& out) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= in.size()) {
    size_t j = in.find('/', i);
    if (j == std::string_view::npos) j = in.size();
    auto part = in.substr(i, j - i);
    if (part.empty() || part == ".") {
    } else if (part == "..") {
      if (parts.empty()) return false;
      parts.pop_back();
    } else {
      parts.push_back(part);
    }
    i = j + 1;
  }
  out.clear();
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out += '/';
    out += parts[k];
  }
  return true;
}

void TarReader::read_exact(char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t k = src_.read(buf + got, n - got);
    if (!k) throw LayerError("layer tar is truncated");
    got += k;
  }
  pos_ += n;
}

size_t TarReader::read_some(char* buf, size_t n) {
  size_t k = src_.read(buf, n);
  pos_ += k;
  return k;
}

void TarReader::skip(uint64_t n) {
  char buf[64 * 1024];
  while (n) {
    size_t k = read_some(buf, std::min<uint64_t>(n, sizeof buf));
    if (!k) throw LayerError("layer tar is truncated");
    n -= k;
  }
}

std::string TarReader::read_blob(uint64_t size, uint64_t limit, const char* what, const char* limit_name) {
  if (size > limit)
    throw LimitError(std::string(what) + " of " + std::to_string(size) + " bytes is over " + limit_name);
  std::string s(size, '\0');
  read_exact(s.data(), size);
  skip(tar_padding(size));
  return s;
}

size_t TarReader::read_data(char* buf, size_t n) {
  if (!sparse_.empty() || logical_left_) {
    if (!logical_left_ || !n) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, logical_left_));
    while (seg_ < sparse_.size() && lpos_ >= sparse_[seg_].first + sparse_[seg_].second) ++seg_;
    size_t k;
    if (seg_ < sparse_.size() && lpos_ >= sparse_[seg_].first) {  // inside a stored piece
      uint64_t piece_left = sparse_[seg_].first + sparse_[seg_].second - lpos_;
      k = read_some(buf, std::min<uint64_t>({n, piece_left, data_left_}));
      if (!k) throw LayerError("layer tar is truncated inside a sparse file's data");
      data_left_ -= k;
    } else {  // a hole, up to the next piece or the end
      uint64_t hole_end = seg_ < sparse_.size() ? sparse_[seg_].first : lpos_ + logical_left_;
      k = static_cast<size_t>(std::min<uint64_t>(n, hole_end - lpos_));
      std::memset(buf, 0, k);
    }
    lpos_ += k;
    logical_left_ -= k;
    return k;
  }
  if (!data_left_) return 0;
  size_t k = read_some(buf, std::min<uint64_t>(n, data_left_));
  if (!k) throw LayerError("layer tar is truncated inside an entry's data");
  data_left_ -= k;
  return k;
}

size_t TarReader::view_data(const char** p, size_t n) {
  if (!sparse_.empty() || logical_left_ || !data_left_) return 0;
  size_t k = src_.view(p, static_cast<size_t>(std::min<uint64_t>(n, data_left_)));
  pos_ += k;
  data_left_ -= k;
  return k;
}

// GNU sparse 1.0: the map is text at the start of the stored data —
// "count\n" then "offset\nlength\n" pairs — padded to a block.
void TarReader::read_sparse_map_v1() {
  std::string text;
  size_t lines_end = 0;
  auto next_number = [&](uint64_t& v) {
    for (;;) {
      size_t nl = text.find('\n', lines_end);
      if (nl != std::string::npos) {
        if (!parse_u64(std::string_view(text).substr(lines_end, nl - lines_end), v))
          throw LayerError("layer tar has a malformed sparse map");
        lines_end = nl + 1;
        return;
      }
      if (data_left_ < kBlock || text.size() > limits_.max_pax_bytes)
        throw LayerError("layer tar has a malformed or oversized sparse map");
      std::string block(kBlock, '\0');
      read_exact(block.data(), kBlock);
      data_left_ -= kBlock;
      text += block;
    }
  };
  uint64_t count = 0;
  next_number(count);
  if (count > limits_.max_pax_bytes / 4) throw LimitError("a sparse file has more pieces than squash.limits.max_pax_bytes allows (4 bytes each)");
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t off = 0, len = 0;
    next_number(off);
    next_number(len);
    sparse_.emplace_back(off, len);
  }
}

bool TarReader::next(TarEntry& e) {
  skip(data_left_ + pad_left_);
  data_left_ = pad_left_ = 0;
  sparse_.clear();
  logical_left_ = lpos_ = 0;
  seg_ = 0;
  std::string long_name, long_link;
  bool have_long_name = false, have_long_link = false;
  std::vector<std::pair<std::string, std::string>> pax;
  bool have_pax = false;
  char h[kBlock];
  for (;;) {
    // End of stream at an entry boundary: a complete archive without end blocks.
    size_t got = read_some(h, kBlock);
    if (got == 0) {
      if (have_pax || have_long_name || have_long_link) throw LayerError("layer tar ends after an extended header");
      return false;
    }
    while (got < kBlock) {
      size_t k = read_some(h + got, kBlock - got);
      if (!k) throw LayerError("layer tar is truncated inside a header");
      got += k;
    }
    if (all_zero(h)) return false;  // end-of-archive (one zero block is enough)
    if (!checksum_ok(h)) throw LayerError("layer is not a valid tar (header checksum mismatch at byte " +
                                          std::to_string(pos_ - kBlock) + ")");
    bool ok = true;
    uint64_t size = field_num(h, kSize, &ok);
    if (!ok) throw LayerError("layer tar has an invalid size field");
    char type = h[kType.off];
    switch (type) {
      case 'L':
        long_name = read_blob(size, limits_.max_path_bytes + 1, "a GNU long name", "squash.limits.max_path_bytes");
        long_name.resize(strnlen(long_name.data(), long_name.size()));
        have_long_name = true;
        continue;
      case 'K':
        long_link = read_blob(size, limits_.max_path_bytes + 1, "a GNU long link name", "squash.limits.max_path_bytes");
        long_link.resize(strnlen(long_link.data(), long_link.size()));
        have_long_link = true;
        continue;
      case 'g':  // PAX global header: dropped
        skip(size + tar_padding(size));
        continue;
      case 'x':
      case 'X': {
        std::string body = read_blob(size, limits_.max_pax_bytes, "a PAX extended header", "squash.limits.max_pax_bytes");
        std::string_view b = body;
        while (!b.empty()) {
          auto sp = b.find(' ');
          uint64_t len = 0;
          if (sp == std::string_view::npos || !parse_u64(b.substr(0, sp), len) || len > b.size() || len <= sp + 1)
            throw LayerError("layer tar has a malformed PAX record");
          auto rec = b.substr(sp + 1, len - sp - 2);  // without the trailing '\n'
          auto eq = rec.find('=');
          if (eq == std::string_view::npos) throw LayerError("layer tar has a malformed PAX record");
          pax.emplace_back(std::string(rec.substr(0, eq)), std::string(rec.substr(eq + 1)));
          b.remove_prefix(len);
        }
        have_pax = true;
        continue;
      }
      case 'V':  // volume label
        skip(size + tar_padding(size));
        continue;
      default: break;
    }

    e = TarEntry{};
    std::string raw_name;
    if (have_long_name) {
      raw_name = long_name;
    } else {
      auto prefix = field_str(h, kPrefix);
      bool ustar = std::memcmp(h + kMagic.off, "ustar", 5) == 0;
      raw_name = (ustar && !prefix.empty() && std::memcmp(h + kMagic.off, "ustar\0", 6) == 0)
                     ? std::string(prefix) + "/" + std::string(field_str(h, kName))
                     : std::string(field_str(h, kName));
    }
    std::string raw_link = have_long_link ? long_link : std::string(field_str(h, kLink));
    e.mode = static_cast<uint32_t>(field_num(h, kMode, &ok) & 07777);
    e.uid = field_num(h, kUid, &ok);
    e.gid = field_num(h, kGid, &ok);
    e.mtime = static_cast<int64_t>(field_num(h, kMtime, &ok));
    e.uname = field_str(h, kUname);
    e.gname = field_str(h, kGname);
    e.devmajor = static_cast<uint32_t>(field_num(h, kDevMajor, &ok));
    e.devminor = static_cast<uint32_t>(field_num(h, kDevMinor, &ok));
    if (!ok) throw LayerError("layer tar has an invalid numeric field");
    // Sparse files: old GNU ('S', map in the header and extension blocks) or
    // PAX GNU.sparse.* (0.0, 0.1: map in records; 1.0: map in the data).
    std::optional<uint64_t> sparse_real;
    bool sparse_v1 = false;
    std::string sparse_name;
    if (type == 'S') {
      for (int i = 0; i < 4; ++i) {
        F off{386 + 24 * static_cast<size_t>(i), 12}, len{398 + 24 * static_cast<size_t>(i), 12};
        if (h[off.off] == 0 && h[len.off] == 0) break;
        sparse_.emplace_back(field_num(h, off, &ok), field_num(h, len, &ok));
      }
      sparse_real = field_num(h, F{483, 12}, &ok);
      bool extended = h[482] != 0;
      while (extended) {
        char x[kBlock];
        read_exact(x, kBlock);
        for (int i = 0; i < 21; ++i) {
          F off{24 * static_cast<size_t>(i), 12}, len{12 + 24 * static_cast<size_t>(i), 12};
          if (x[off.off] == 0 && x[len.off] == 0) break;
          sparse_.emplace_back(field_num(x, off, &ok), field_num(x, len, &ok));
          if (sparse_.size() > limits_.max_pax_bytes / 4) throw LimitError("a sparse file has more pieces than squash.limits.max_pax_bytes allows (4 bytes each)");
        }
        extended = x[504] != 0;
      }
      type = '0';
    }
    {
      std::string major, minor, map;
      uint64_t pending_offset = 0;
      bool have_offset = false;
      for (auto& [k, v] : pax) {
        if (!k.starts_with("GNU.sparse.")) continue;
        uint64_t n = 0;
        if (k == "GNU.sparse.major") major = v;
        else if (k == "GNU.sparse.minor") minor = v;
        else if (k == "GNU.sparse.name") sparse_name = v;
        else if ((k == "GNU.sparse.realsize" || k == "GNU.sparse.size") && parse_u64(v, n)) sparse_real = n;
        else if (k == "GNU.sparse.map") map = v;
        else if (k == "GNU.sparse.offset" && parse_u64(v, n)) {
          pending_offset = n;
          have_offset = true;
        } else if (k == "GNU.sparse.numbytes" && parse_u64(v, n) && have_offset) {
          sparse_.emplace_back(pending_offset, n);
          have_offset = false;
        }
      }
      if (!map.empty()) {
        std::vector<uint64_t> nums;
        size_t i = 0;
        while (i <= map.size()) {
          size_t c = map.find(',', i);
          uint64_t n = 0;
          if (!parse_u64(std::string_view(map).substr(i, c == std::string::npos ? std::string::npos : c - i), n))
            throw LayerError("layer tar has a malformed GNU.sparse.map");
          nums.push_back(n);
          if (c == std::string::npos) break;
          i = c + 1;
        }
        if (nums.size() % 2) throw LayerError("layer tar has a malformed GNU.sparse.map");
        for (size_t j = 0; j < nums.size(); j += 2) sparse_.emplace_back(nums[j], nums[j + 1]);
      }
      sparse_v1 = major == "1";
      if (sparse_v1 && !sparse_real) throw LayerError("layer tar has a sparse file without GNU.sparse.realsize");
    }
    for (auto& [k, v] : pax) {
      if (k == "path") raw_name = v;
      else if (k == "linkpath") raw_link = v;
      else if (k == "size" && !parse_u64(v, size)) throw LayerError("layer tar has an invalid PAX size");
      else if (k == "uid" && !parse_u64(v, e.uid)) throw LayerError("layer tar has an invalid PAX uid");
      else if (k == "gid" && !parse_u64(v, e.gid)) throw LayerError("layer tar has an invalid PAX gid");
      else if (k == "uname") e.uname = v;
      else if (k == "gname") e.gname = v;
      else if (k == "mtime" && !parse_pax_time(v, e.mtime, e.mtime_nsec)) throw LayerError("layer tar has an invalid PAX mtime");
      else if (k.starts_with("SCHILY.xattr.")) e.xattrs.emplace_back(k.substr(13), v);
    }
    if (!sparse_name.empty()) raw_name = sparse_name;
    std::sort(e.xattrs.begin(), e.xattrs.end());
    e.xattrs.erase(std::unique(e.xattrs.begin(), e.xattrs.end(),
                               [](auto& a, auto& b) { return a.first == b.first; }),
                   e.xattrs.end());
    if (raw_name.size() > limits_.max_path_bytes || raw_link.size() > limits_.max_path_bytes)
      throw LimitError("a path in the layer is longer than squash.limits.max_path_bytes");
    bool trailing_slash = !raw_name.empty() && raw_name.back() == '/';
    if (!clean_path(raw_name, e.path)) throw LayerError("layer entry \"" + raw_name + "\" escapes the root with ..");
    switch (type) {
      case '0': case '\0': case '7': e.type = trailing_slash && type == '\0' ? EntryType::Dir : EntryType::File; break;
      case '1': e.type = EntryType::HardLink; break;
      case '2': e.type = EntryType::Symlink; break;
      case '3': e.type = EntryType::Char; break;
      case '4': e.type = EntryType::Block; break;
      case '5': case 'D': e.type = EntryType::Dir; break;
      case '6': e.type = EntryType::Fifo; break;
      default: throw LayerError(std::string("layer tar has an entry of unknown type '") + type + "'");
    }
    if (e.type == EntryType::HardLink) {
      if (!clean_path(raw_link, e.link) || e.link.empty())
        throw LayerError("hardlink \"" + raw_name + "\" points at \"" + raw_link + "\", outside the root");
    } else if (e.type == EntryType::Symlink) {
      e.link = raw_link;
    }
    // Data follows regular files; other types may carry a size we skip.
    e.size = e.type == EntryType::File ? size : 0;
    data_left_ = size;
    pad_left_ = tar_padding(size);
    if (e.type == EntryType::File && (sparse_real || !sparse_.empty())) {
      if (sparse_v1) read_sparse_map_v1();
      uint64_t stored = 0, end = 0;
      for (auto& [off, len] : sparse_) {
        if (off < end) throw LayerError("layer tar has a sparse map that is not in order");
        end = off + len;
        stored += len;
      }
      uint64_t real = sparse_real.value_or(end);
      if (end > real || stored != data_left_)
        throw LayerError("layer tar has a sparse map that does not match the stored data");
      e.size = real;
      logical_left_ = real;
      if (sparse_.empty()) sparse_.emplace_back(real, 0);  // all hole: keeps the sparse path on
    }
    e.data_offset = pos_;
    if (e.type != EntryType::File) {
      skip(data_left_ + pad_left_);
      data_left_ = pad_left_ = 0;
    }
    return true;
  }
}

// ---- writing --------------------------------------------------------------

namespace {

void put_octal(char* h, F f, uint64_t v) {
  // f.len - 1 digits, zero padded, NUL terminated.
  char* p = h + f.off;
  size_t digits = f.len - 1;
  for (size_t i = digits; i-- > 0;) {
    p[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  p[digits] = 0;
}

bool fits_octal(uint64_t v, F f) { return v < (uint64_t{1} << (3 * (f.len - 1))); }

void put_str(char* h, F f, std::string_view s) { std::memcpy(h + f.off, s.data(), std::min(s.size(), f.len)); }

void pax_record(std::string& out, std::string_view key, std::string_view value) {
  // "<len> key=value\n", where len counts its own digits.
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  out += std::to_string(len);
  out += ' ';
  out += key;
  out += '=';
  out += value;
  out += '\n';
}

void finish_block(char* h) {
  std::memset(h + kChksum.off, ' ', kChksum.len);
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(h[i]);
  // six octal digits, NUL, space
  char* p = h + kChksum.off;
  for (int i = 5; i >= 0; --i) {
    p[i] = static_cast<char>('0' + (sum & 7));
    sum >>= 3;
  }
  p[6] = 0;
  p[7] = ' ';
}

}  // namespace

size_t write_header(const TarEntry& e, std::string& out) {
  size_t start = out.size();
  std::string name = e.path.empty() ? "." : e.path;
  if (e.type == EntryType::Dir) name += '/';
  uint64_t size = e.type == EntryType::File ? e.size : 0;

  std::string pax;
  std::string ustar_name, ustar_prefix;
  if (name.size() <= kName.len) {
    ustar_name = name;
  } else {
    // ustar split at a '/' (never the trailing one of a directory): prefix
    // <= 155 bytes, name <= 100. The rightmost candidate is the only one that
    // can leave a short enough name.
    size_t cut = name.rfind('/', std::min(kPrefix.len, name.size() - 2));
    size_t rest = cut == std::string::npos ? 0 : name.size() - cut - 1;
    if (cut != std::string::npos && cut > 0 && rest > 0 && rest <= kName.len) {
      ustar_prefix = name.substr(0, cut);
      ustar_name = name.substr(cut + 1);
    } else {
      pax_record(pax, "path", name);
      ustar_name = name.substr(0, kName.len);
    }
  }
  if (e.link.size() > kLink.len) pax_record(pax, "linkpath", e.link);
  if (!fits_octal(e.uid, kUid)) pax_record(pax, "uid", std::to_string(e.uid));
  if (!fits_octal(e.gid, kGid)) pax_record(pax, "gid", std::to_string(e.gid));
  if (!fits_octal(size, kSize)) pax_record(pax, "size", std::to_string(size));
  if (e.mtime < 0 || e.mtime_nsec != 0 || !fits_octal(static_cast<uint64_t>(e.mtime), kMtime)) {
    std::string t;
    int64_t sec = e.mtime;
    uint32_t ns = e.mtime_nsec;
    if (sec < 0 && ns) {  // -1.25 s is sec=-2, ns=0.75e9
      t = "-" + std::to_string(-(sec + 1));
      ns = 1000000000 - ns;
    } else {
      t = std::to_string(sec);
    }
    if (ns) {
      char frac[16];
      std::snprintf(frac, sizeof frac, ".%09u", ns);
      std::string f = frac;
      while (f.back() == '0') f.pop_back();
      t += f;
    }
    pax_record(pax, "mtime", t);
  }
  if (e.uname.size() > kUname.len) pax_record(pax, "uname", e.uname);
  if (e.gname.size() > kGname.len) pax_record(pax, "gname", e.gname);
  for (auto& [k, v] : e.xattrs) pax_record(pax, "SCHILY.xattr." + k, v);

  if (!pax.empty()) {
    char x[kBlock] = {};
    put_str(x, kName, "././@PaxHeader");
    put_octal(x, kMode, 0644);
    put_octal(x, kUid, 0);
    put_octal(x, kGid, 0);
    put_octal(x, kSize, pax.size());
    put_octal(x, kMtime, 0);
    x[kType.off] = 'x';
    std::memcpy(x + kMagic.off, "ustar", 6);
    std::memcpy(x + kVersion.off, "00", 2);
    finish_block(x);
    out.append(x, kBlock);
    out += pax;
    out.append(tar_padding(pax.size()), '\0');
  }

  char h[kBlock] = {};
  put_str(h, kName, ustar_name);
  put_octal(h, kMode, e.mode & 07777);
  put_octal(h, kUid, fits_octal(e.uid, kUid) ? e.uid : 0);
  put_octal(h, kGid, fits_octal(e.gid, kGid) ? e.gid : 0);
  put_octal(h, kSize, fits_octal(size, kSize) ? size : 0);
  put_octal(h, kMtime, (e.mtime >= 0 && fits_octal(static_cast<uint64_t>(e.mtime), kMtime)) ? e.mtime : 0);
  h[kType.off] = static_cast<char>(e.type);
  put_str(h, kLink, e.link.size() <= kLink.len ? e.link : e.link.substr(0, kLink.len));
  std::memcpy(h + kMagic.off, "ustar", 6);
  std::memcpy(h + kVersion.off, "00", 2);
  put_str(h, kUname, e.uname.size() <= kUname.len ? e.uname : "");
  put_str(h, kGname, e.gname.size() <= kGname.len ? e.gname : "");
  if (e.type == EntryType::Char || e.type == EntryType::Block) {
    put_octal(h, kDevMajor, e.devmajor);
    put_octal(h, kDevMinor, e.devminor);
  }
  put_str(h, kPrefix, ustar_prefix);
  finish_block(h);
  out.append(h, kBlock);
  return out.size() - start;
}

}  // namespace wharf::squash
