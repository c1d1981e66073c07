// squash/tar.h — reading tar streams (ustar, GNU long names, PAX) and
// writing entries in one canonical form (ustar where it fits, PAX where it
// does not), plus the path cleaning every layer entry goes through.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "squash/layer_decoder.h"
#include "squash/limits.h"

namespace wharf::squash {

enum class EntryType : char {
  File = '0',
  HardLink = '1',
  Symlink = '2',
  Char = '3',
  Block = '4',
  Dir = '5',
  Fifo = '6',
};

// One tar entry's metadata, with names already cleaned.
struct TarEntry {
  std::string path;  // cleaned: no "./", leading "/", "//" or trailing "/"; "" is the root
  std::string link;  // hardlink target (cleaned) or symlink target (verbatim)
  EntryType type = EntryType::File;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint64_t uid = 0, gid = 0;
  std::string uname, gname;
  int64_t mtime = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;  // data bytes (regular files only)
  uint32_t devmajor = 0, devminor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
  uint64_t data_offset = 0;  // where the data starts in the uncompressed stream
};

// Cleans a path from a layer: strips "./", leading "/", "//", "." parts and a
// trailing "/", resolves "..". Returns false when ".." escapes the root.
bool clean_path(std::string_view in, std::string& out);

// Reads entries from an uncompressed tar stream. A stream that ends at an
// entry boundary without end-of-archive blocks is complete (umoci writes
// those). Sparse files (old GNU 'S', PAX GNU.sparse 0.0/0.1/1.0) come out
// expanded: size is the real size, read_data fills holes with zeros.
// Throws LayerError for anything that is not a valid tar.
class TarReader {
 public:
  TarReader(ByteSource& src, const Limits& limits) : src_(src), limits_(limits) {}
  // Moves to the next entry (skipping the rest of the current one's data).
  // Returns false at the end of the archive.
  bool next(TarEntry& e);
  // Reads up to n bytes of the current entry's data; 0 at its end.
  size_t read_data(char* buf, size_t n);
  // The same without a copy where the source allows it (ByteSource::view);
  // 0 means "use read_data".
  size_t view_data(const char** p, size_t n);
  uint64_t position() const { return pos_; }

 private:
  void read_exact(char* buf, size_t n);
  size_t read_some(char* buf, size_t n);
  void skip(uint64_t n);
  // Reads a header's payload of `size` bytes; over `limit`: a LimitError naming `limit_name`.
  std::string read_blob(uint64_t size, uint64_t limit, const char* what, const char* limit_name);

  ByteSource& src_;
  Limits limits_;
  uint64_t pos_ = 0;
  uint64_t data_left_ = 0;  // of the current entry, as stored
  uint64_t pad_left_ = 0;   // padding after the current entry's data
  // Sparse entries are expanded: (offset, length) of the stored pieces in the
  // file, holes read as zeros. Empty: not sparse.
  std::vector<std::pair<uint64_t, uint64_t>> sparse_;
  uint64_t logical_left_ = 0, lpos_ = 0;
  size_t seg_ = 0;
  void read_sparse_map_v1();
};

// Appends the canonical header block(s) for `e` (with e.size bytes of data to
// follow, for regular files) to `out`; returns how many bytes were appended.
// Deterministic: the same entry always gives the same bytes.
size_t write_header(const TarEntry& e, std::string& out);
// Bytes of zero padding after `size` bytes of data.
inline uint64_t tar_padding(uint64_t size) { return (512 - size % 512) % 512; }

}  // namespace wharf::squash
