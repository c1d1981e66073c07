// squash/gzip.h — gzip transfer of squashed archives, compressed with ISA-L.
//
// A response is one gzip member: header, then raw deflate pieces that are
// concatenated (every piece but the last ends with a sync flush, so each
// starts byte-aligned and refers to nothing before it), then CRC-32 and
// length. The big middle piece — the squashed layer — is compressed once and
// cached; the small head and tail pieces are compressed per request, so a
// cached gzip response has an exact Content-Length.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace wharf::squash {

// Raw deflate (ISA-L level 1) feeding `out`. Not thread-safe.
class Deflater {
 public:
  using Out = std::function<void(const char*, size_t)>;
  explicit Deflater(Out out);
  ~Deflater();
  void write(const char* data, size_t n);
  // Ends this piece byte-aligned without a final block: more pieces may follow.
  void sync_flush();
  // Ends the stream with a final block.
  void finish();
  uint32_t crc() const { return crc_; }
  uint64_t in_bytes() const { return in_; }

 private:
  void run(int flush, bool end);
  struct State;
  std::unique_ptr<State> st_;
  Out out_;
  uint32_t crc_ = 0;
  uint64_t in_ = 0;
};

// The 10-byte gzip header wharf writes (no name, mtime 0: deterministic).
std::string gzip_header();
// CRC-32 and ISIZE trailer.
std::string gzip_trailer(uint32_t crc, uint64_t size);
uint32_t crc32_update(uint32_t crc, const char* data, size_t n);
uint32_t crc32_combine(uint32_t a, uint32_t b, uint64_t len_b);
// A whole piece compressed in memory (for the small head and tail).
std::string deflate_piece(const std::string& data, bool final_piece);

}  // namespace wharf::squash
