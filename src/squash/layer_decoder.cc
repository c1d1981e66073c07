#include "squash/layer_decoder.h"

#include "core/digest.h"

#include <dlfcn.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace wharf::squash {

namespace {

constexpr size_t kInBuf = 256 * 1024;

// Buffered compressed input with a peek at the first bytes. Knows the blob
// offset of what it has consumed and, when asked, hashes the consumed bytes
// below an end offset (checkpoint integrity, see InflateCheckpoints).
class Input {
 public:
  explicit Input(std::unique_ptr<storage::BlobReader> r, uint64_t start = 0)
      : r_(std::move(r)), buf_(kInBuf), offset_(start) {}
  // Makes at least `want` bytes available if the blob has them; returns what is.
  size_t fill(size_t want = 1) {
    if (avail() >= want) return avail();
    if (pos_ > 0) {
      std::memmove(buf_.data(), buf_.data() + pos_, avail());
      end_ -= pos_;
      pos_ = 0;
    }
    while (end_ < want || end_ == 0) {
      size_t n = r_->read(buf_.data() + end_, buf_.size() - end_);
      if (!n) break;
      end_ += n;
    }
    return avail();
  }
  size_t avail() const { return end_ - pos_; }
  const char* data() const { return buf_.data() + pos_; }
  void consume(size_t n) {
    if (offset_ < hash_end_) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, hash_end_ - offset_));
      if (hash_) hash_->update(data(), k);
      crc_ = crc32_gzip_refl(crc_, reinterpret_cast<const unsigned char*>(data()), k);
    }
    pos_ += n;
    offset_ += n;
  }
  uint64_t offset() const { return offset_; }
  // Hashes what is consumed from now on, up to blob offset `end`: a CRC-32
  // always, a SHA-256 too when `sha`.
  void hash_until(uint64_t end, bool sha = true) {
    if (sha) hash_.emplace();
    hash_end_ = end;
  }
  // The hex SHA-256 ("" when not hashing with SHA-256) and the CRC-32 of the
  // bytes since hash_until or the last call; restarts both.
  std::pair<std::string, uint32_t> take_hash() {
    std::string h;
    if (hash_) {
      h = hash_->finish().hex();
      hash_.emplace();
    }
    return {h, std::exchange(crc_, 0)};
  }
  // Consumes up to blob offset `end` (or the blob's end).
  void skip_to(uint64_t end) {
    while (offset_ < end && fill()) consume(static_cast<size_t>(std::min<uint64_t>(avail(), end - offset_)));
  }

 private:
  std::unique_ptr<storage::BlobReader> r_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  uint64_t offset_;
  std::optional<core::Hasher> hash_;
  uint64_t hash_end_ = 0;
  uint32_t crc_ = 0;
};

// A saved ISA-L state: header (layout, raw length, CRC-32 of the raw bytes),
// an encoding byte (0 stored, 1 raw deflate) and the bytes of inflate_state
// up to the end of the valid part of its output buffer (the history). Only
// resumable() states are saved.
constexpr size_t kStateHeader = 12;
constexpr size_t kStateFixed = offsetof(inflate_state, tmp_out_buffer);

void put_u32(std::string& o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o += static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// A state between two isal_inflate calls that can be saved and resumed:
// inside a started gzip member, nothing pending but the history, every
// counter in range. Checked when saving and again, on the saved bytes, before
// ISA-L sees them (a damaged state must be an error, not an overrun).
bool resumable(const inflate_state& st) {
  return st.block_state <= ISAL_BLOCK_CODED && st.total_out > 0 && st.crc_flag == ISAL_GZIP && st.dict_length == 0 &&
         st.hist_bits == 0 && st.write_overflow_lits == 0 && st.write_overflow_len == 0 &&
         st.copy_overflow_length == 0 && st.copy_overflow_distance == 0 && st.tmp_in_size >= 0 &&
         st.tmp_in_size <= ISAL_DEF_MAX_HDR_SIZE && st.read_in_length >= 0 && st.read_in_length <= 64 &&
         st.tmp_out_valid >= 0 && static_cast<size_t>(st.tmp_out_valid) <= sizeof st.tmp_out_buffer &&
         st.tmp_out_processed >= 0 && st.tmp_out_processed <= st.tmp_out_valid && st.bfinal <= 1 &&
         (st.block_state != ISAL_BLOCK_TYPE0 || (st.type0_block_len >= 0 && st.type0_block_len <= 65535));
}

void save_state(const inflate_state& st, std::string& out) {
  size_t valid = static_cast<size_t>(std::clamp<int32_t>(st.tmp_out_valid, 0, sizeof st.tmp_out_buffer));
  size_t raw = kStateFixed + valid;
  auto bytes = reinterpret_cast<const uint8_t*>(&st);
  put_u32(out, sizeof(inflate_state));
  put_u32(out, static_cast<uint32_t>(raw));
  put_u32(out, crc32_gzip_refl(0, bytes, raw));
  // Raw deflate with ISA-L's fastest level (about half the size; inflating it
  // back costs a few microseconds per chunk); stored as is if it does not shrink.
  size_t at = out.size();
  out.resize(at + 1 + raw);
  isal_zstream z;
  isal_deflate_stateless_init(&z);
  z.level = 0;
  z.end_of_stream = 1;
  z.next_in = const_cast<uint8_t*>(bytes);
  z.avail_in = static_cast<uint32_t>(raw);
  z.next_out = reinterpret_cast<uint8_t*>(out.data() + at + 1);
  z.avail_out = static_cast<uint32_t>(raw);
  if (isal_deflate_stateless(&z) == COMP_OK) {
    out[at] = 1;
    out.resize(at + 1 + z.total_out);
  } else {
    out[at] = 0;
    std::memcpy(out.data() + at + 1, bytes, raw);
  }
}

void load_state(std::string_view s, inflate_state& st) {
  auto bad = [] { return ChunkError("a saved inflate checkpoint is damaged"); };
  if (s.size() < kStateHeader || get_u32(s.data()) != sizeof(inflate_state)) throw bad();
  isal_inflate_init(&st);
  uint32_t raw = get_u32(s.data() + 4), crc = get_u32(s.data() + 8);
  if (raw < kStateFixed || raw > sizeof(inflate_state) || s.size() < kStateHeader + 1) throw bad();
  std::string_view body = s.substr(kStateHeader + 1);
  bool ok;
  if (s[kStateHeader] == 0) {
    ok = body.size() == raw;
    if (ok) std::memcpy(&st, body.data(), raw);
  } else {
    inflate_state tmp;  // a second decoder inflates the saved bytes into `st`
    isal_inflate_init(&tmp);
    tmp.crc_flag = ISAL_DEFLATE;
    tmp.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(body.data()));
    tmp.avail_in = static_cast<uint32_t>(body.size());
    tmp.next_out = reinterpret_cast<uint8_t*>(&st);
    tmp.avail_out = raw;
    ok = isal_inflate_stateless(&tmp) == ISAL_DECOMP_OK && tmp.total_out == raw;
  }
  if (!ok || crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(&st), raw) != crc || !resumable(st) ||
      raw != kStateFixed + static_cast<size_t>(st.tmp_out_valid)) {
    isal_inflate_init(&st);
    throw bad();
  }
  st.next_in = nullptr;
  st.avail_in = 0;
  st.next_out = nullptr;
  st.avail_out = 0;
}

class Budgeted : public ByteSource {
 public:
  explicit Budgeted(std::atomic<int64_t>* budget) : budget_(budget) {}
  size_t read(char* buf, size_t n) final {
    size_t got = produce(buf, n);
    if (budget_ && budget_->fetch_sub(static_cast<int64_t>(got)) < static_cast<int64_t>(got))
      throw LimitError(
          "the image is larger than the squash limit on uncompressed bytes (squash.limits.max_uncompressed_bytes)");
    return got;
  }

 protected:
  virtual size_t produce(char* buf, size_t n) = 0;

 private:
  std::atomic<int64_t>* budget_;
};

class PlainSource : public Budgeted {
 public:
  PlainSource(std::unique_ptr<Input> in, std::atomic<int64_t>* b) : Budgeted(b), in_(std::move(in)) {}
  size_t produce(char* buf, size_t n) override {
    if (!in_->fill()) return 0;
    size_t k = std::min(n, in_->avail());
    std::memcpy(buf, in_->data(), k);
    in_->consume(k);
    return k;
  }

 private:
  std::unique_ptr<Input> in_;
};

class GzipSource : public Budgeted {
 public:
  GzipSource(std::unique_ptr<Input> in, std::atomic<int64_t>* b, InflateCheckpoints* rec = nullptr,
             uint64_t spacing = 0)
      : Budgeted(b), in_(std::move(in)), rec_(rec), spacing_(spacing) {
    isal_inflate_init(&st_);
    st_.crc_flag = ISAL_GZIP;
    if (rec_) {
      *rec_ = InflateCheckpoints{};
      in_->hash_until(UINT64_MAX);
    }
  }
  // Resumes from a saved state (chunk decoding); `in` starts where it was saved.
  GzipSource(std::unique_ptr<Input> in, std::string_view state) : Budgeted(nullptr), in_(std::move(in)) {
    load_state(state, st_);
  }
  Input& input() { return *in_; }
  const inflate_state& state() const { return st_; }

  size_t produce(char* buf, size_t n) override {
    for (;;) {
      if (done_) return 0;
      if (st_.block_state == ISAL_BLOCK_FINISH) {
        // End of one member: another may follow (multi-member gzip); anything
        // else (zero padding) ends the stream.
        size_t a = in_->fill(2);
        if (a < 2 || static_cast<unsigned char>(in_->data()[0]) != 0x1f ||
            static_cast<unsigned char>(in_->data()[1]) != 0x8b) {
          done_ = true;
          if (rec_) finish_record();
          return 0;
        }
        isal_inflate_reset(&st_);
        st_.crc_flag = ISAL_GZIP;
      }
      if (in_->avail() == 0 && !in_->fill()) {
        if (st_.block_state != ISAL_BLOCK_FINISH) throw LayerError("gzip layer is truncated");
        continue;
      }
      st_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in_->data()));
      st_.avail_in = static_cast<uint32_t>(std::min<size_t>(in_->avail(), UINT32_MAX));
      st_.next_out = reinterpret_cast<uint8_t*>(buf);
      st_.avail_out = static_cast<uint32_t>(std::min<size_t>(n, UINT32_MAX));
      uint32_t before = st_.avail_in;
      int rc = isal_inflate(&st_);
      in_->consume(before - st_.avail_in);
      if (rc < 0) throw LayerError("gzip layer is corrupt (inflate error " + std::to_string(rc) + ")");
      size_t got = n - st_.avail_out;
      if (got) {
        out_ += got;
        if (rec_ && out_ - last_ >= spacing_) checkpoint();
        return got;
      }
      if (before == st_.avail_in && st_.block_state != ISAL_BLOCK_FINISH && !in_->fill(in_->avail() + 1))
        throw LayerError("gzip layer is truncated");
    }
  }

 private:
  // Between two isal_inflate calls: save the state if it can be resumed.
  void checkpoint() {
    if (!resumable(st_)) return;                            // try again after the next call
    if (rec_->chunks.empty()) rec_->chunks.emplace_back();  // chunk 0: from the start
    std::tie(rec_->chunks.back().in_sha256, rec_->chunks.back().in_crc) = in_->take_hash();
    InflateChunk c;
    c.out = out_;
    c.in = in_->offset();
    c.member_crc = st_.crc;
    c.state_off = states_.size();
    save_state(st_, states_);
    c.state_len = static_cast<uint32_t>(states_.size() - c.state_off);
    rec_->chunks.push_back(c);
    last_ = out_;
  }
  void finish_record() {
    if (rec_->chunks.size() < 2) {
      *rec_ = InflateCheckpoints{};
      return;
    }
    std::tie(rec_->chunks.back().in_sha256, rec_->chunks.back().in_crc) = in_->take_hash();
    rec_->end_out = out_;
    rec_->end_in = in_->offset();
    rec_->layout = inflate_layout();
    rec_->states = std::make_shared<const std::string>(std::move(states_));
    for (size_t k = 0; k < rec_->chunks.size(); ++k)
      if (rec_->chunk_len(k) > kMaxInflateChunk) *rec_ = InflateCheckpoints{};  // cannot be cut fine enough
  }

  std::unique_ptr<Input> in_;
  inflate_state st_{};
  bool done_ = false;
  uint64_t out_ = 0;  // bytes produced
  InflateCheckpoints* rec_ = nullptr;
  uint64_t spacing_ = 0, last_ = 0;
  std::string states_;
};

// One chunk of a checkpointed layer (see open_chunk).
class ChunkSource : public ByteSource {
 public:
  ChunkSource(std::unique_ptr<storage::BlobReader> blob, const InflateCheckpoints& cps, size_t k,
              std::string_view state, bool trusted)
      : cps_(cps), k_(k), trusted_(trusted) {
    const InflateChunk& c = cps.chunks[k];
    last_ = k + 1 == cps.chunks.size();
    in_end_ = last_ ? cps.end_in : cps.chunks[k + 1].in;
    left_ = cps.chunk_len(k);
    auto in = std::make_unique<Input>(std::move(blob), c.in);
    in->hash_until(in_end_, !trusted);
    if (k == 0) {
      gz_ = std::make_unique<GzipSource>(std::move(in), nullptr);
    } else {
      gz_ = std::make_unique<GzipSource>(std::move(in), state);
    }
  }
  size_t read(char* buf, size_t n) override {
    if (!left_) {
      if (!checked_) check();
      return 0;
    }
    size_t k = gz_->read(buf, static_cast<size_t>(std::min<uint64_t>(n, left_)));
    if (!k) throw damaged();
    left_ -= k;
    return k;
  }

 private:
  ChunkError damaged() const {
    return ChunkError("gzip layer does not match its digest: chunk " + std::to_string(k_) +
                      " differs from what was indexed (the blob is damaged or was altered)");
  }
  void check() {
    checked_ = true;
    if (last_) {
      char extra;
      if (gz_->read(&extra, 1)) throw damaged();  // the stream must end here (trailer checked by ISA-L)
    } else if (gz_->state().crc != cps_.chunks[k_ + 1].member_crc) {
      throw damaged();
    }
    Input& in = gz_->input();
    in.skip_to(in_end_);
    auto [sha, crc] = in.take_hash();
    if (in.offset() < in_end_ || crc != cps_.chunks[k_].in_crc || (!trusted_ && sha != cps_.chunks[k_].in_sha256))
      throw damaged();
  }

  const InflateCheckpoints& cps_;
  size_t k_;
  bool trusted_;
  bool last_ = false, checked_ = false;
  uint64_t in_end_ = 0, left_ = 0;
  std::unique_ptr<GzipSource> gz_;
};

class ZstdSource : public Budgeted {
 public:
  ZstdSource(std::unique_ptr<Input> in, std::atomic<int64_t>* b, int window_log_max) : Budgeted(b), in_(std::move(in)) {
    ctx_ = ZSTD_createDCtx();
    ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, window_log_max);
  }
  ~ZstdSource() override { ZSTD_freeDCtx(ctx_); }
  size_t produce(char* buf, size_t n) override {
    for (;;) {
      if (in_->avail() == 0 && !in_->fill()) {
        if (last_ret_ != 0) throw LayerError("zstd layer is truncated");
        return 0;
      }
      ZSTD_inBuffer ib{in_->data(), in_->avail(), 0};
      ZSTD_outBuffer ob{buf, n, 0};
      size_t r = ZSTD_decompressStream(ctx_, &ob, &ib);
      in_->consume(ib.pos);
      if (ZSTD_isError(r)) {
        if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge)
          throw LimitError("zstd layer needs a larger window than squash.limits.zstd_window_log_max allows");
        throw LayerError(std::string("zstd layer is corrupt: ") + ZSTD_getErrorName(r));
      }
      last_ret_ = r;
      if (ob.pos) return ob.pos;
    }
  }

 private:
  std::unique_ptr<Input> in_;
  ZSTD_DCtx* ctx_;
  size_t last_ret_ = 0;
};

}  // namespace

uint64_t inflate_layout() {
  static const uint64_t layout = [] {
    std::string name;
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&isal_inflate), &info) && info.dli_fname) {
      char real[PATH_MAX];
      name = ::realpath(info.dli_fname, real) ? real : info.dli_fname;  // e.g. .../libisal.so.2.0.30
      name = name.substr(name.rfind('/') + 1);
    }
    return uint64_t{sizeof(inflate_state)} << 32 |
           crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(name.data()), name.size());
  }();
  return layout;
}

bool InflateCheckpoints::usable() const { return chunks.size() >= 2 && layout == inflate_layout(); }

std::unique_ptr<ByteSource> open_chunk(std::unique_ptr<storage::BlobReader> blob, const InflateCheckpoints& cps,
                                       size_t k, std::string_view state, bool trusted) {
  return std::make_unique<ChunkSource>(std::move(blob), cps, k, state, trusted);
}

std::unique_ptr<ByteSource> open_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits,
                                       std::atomic<int64_t>* budget, Compression* detected, InflateCheckpoints* record,
                                       uint64_t spacing) {
  auto in = std::make_unique<Input>(std::move(blob));
  size_t a = in->fill(4);
  auto b = reinterpret_cast<const unsigned char*>(in->data());
  Compression c = Compression::None;
  if (a >= 2 && b[0] == 0x1f && b[1] == 0x8b) c = Compression::Gzip;
  if (a >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) c = Compression::Zstd;
  if (detected) *detected = c;
  if (record) *record = InflateCheckpoints{};
  switch (c) {
    case Compression::Gzip:
      return std::make_unique<GzipSource>(std::move(in), budget, spacing ? record : nullptr, spacing);
    case Compression::Zstd: return std::make_unique<ZstdSource>(std::move(in), budget, limits.zstd_window_log_max);
    case Compression::None: break;
  }
  return std::make_unique<PlainSource>(std::move(in), budget);
}

}  // namespace wharf::squash
