#include "squash/gzip.h"

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <vector>

namespace wharf::squash {

struct Deflater::State {
  isal_zstream z{};
  std::vector<uint8_t> level_buf = std::vector<uint8_t>(ISAL_DEF_LVL1_DEFAULT);
  std::vector<uint8_t> out = std::vector<uint8_t>(256 * 1024);
};

Deflater::Deflater(Out out) : st_(std::make_unique<State>()), out_(std::move(out)) {
  isal_deflate_init(&st_->z);
  st_->z.level = 1;
  st_->z.level_buf = st_->level_buf.data();
  st_->z.level_buf_size = static_cast<uint32_t>(st_->level_buf.size());
  st_->z.gzip_flag = IGZIP_DEFLATE;
}
Deflater::~Deflater() = default;

void Deflater::run(int flush, bool end) {
  auto& z = st_->z;
  z.flush = flush;
  z.end_of_stream = end ? 1 : 0;
  for (;;) {
    z.next_out = st_->out.data();
    z.avail_out = static_cast<uint32_t>(st_->out.size());
    if (isal_deflate(&z) != COMP_OK) throw std::runtime_error("isal_deflate failed");
    size_t produced = st_->out.size() - z.avail_out;
    if (produced) out_(reinterpret_cast<const char*>(st_->out.data()), produced);
    bool drained = z.avail_in == 0 && z.avail_out != 0;
    if (end ? z.internal_state.state == ZSTATE_END : drained) break;
  }
}

void Deflater::write(const char* data, size_t n) {
  crc_ = crc32_update(crc_, data, n);
  in_ += n;
  auto& z = st_->z;
  while (n) {
    size_t k = std::min<size_t>(n, 1u << 30);
    z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data));
    z.avail_in = static_cast<uint32_t>(k);
    run(NO_FLUSH, false);
    data += k;
    n -= k;
  }
}

void Deflater::sync_flush() {
  st_->z.avail_in = 0;
  run(SYNC_FLUSH, false);
}

void Deflater::finish() {
  st_->z.avail_in = 0;
  run(FULL_FLUSH, true);
}

std::string gzip_header() { return std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10); }

std::string gzip_trailer(uint32_t crc, uint64_t size) {
  std::string t(8, '\0');
  uint32_t isize = static_cast<uint32_t>(size & 0xffffffffu);
  for (int i = 0; i < 4; ++i) {
    t[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    t[4 + i] = static_cast<char>((isize >> (8 * i)) & 0xff);
  }
  return t;
}

uint32_t crc32_update(uint32_t crc, const char* data, size_t n) {
  return crc32_gzip_refl(crc, reinterpret_cast<const unsigned char*>(data), n);
}

// zlib's combination (a well-kept implementation of the GF(2) matrix trick).
uint32_t crc32_combine(uint32_t a, uint32_t b, uint64_t len_b) {
  return static_cast<uint32_t>(::crc32_combine64(a, b, static_cast<z_off64_t>(len_b)));
}

std::string deflate_piece(const std::string& data, bool final_piece) {
  std::string out;
  Deflater d([&](const char* p, size_t n) { out.append(p, n); });
  d.write(data.data(), data.size());
  if (final_piece)
    d.finish();
  else
    d.sync_flush();
  return out;
}

}  // namespace wharf::squash
