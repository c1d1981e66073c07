#include "squash/layer_decoder.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <cstring>
#include <vector>

namespace wharf::squash {

namespace {

constexpr size_t kInBuf = 256 * 1024;

// Buffered compressed input with a peek at the first bytes.
class Input {
 public:
  explicit Input(std::unique_ptr<storage::BlobReader> r) : r_(std::move(r)), buf_(kInBuf) {}
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
  void consume(size_t n) { pos_ += n; }

 private:
  std::unique_ptr<storage::BlobReader> r_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
};

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
  GzipSource(std::unique_ptr<Input> in, std::atomic<int64_t>* b) : Budgeted(b), in_(std::move(in)) {
    isal_inflate_init(&st_);
    st_.crc_flag = ISAL_GZIP;
  }
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
      if (got) return got;
      if (before == st_.avail_in && st_.block_state != ISAL_BLOCK_FINISH && !in_->fill(in_->avail() + 1))
        throw LayerError("gzip layer is truncated");
    }
  }

 private:
  std::unique_ptr<Input> in_;
  inflate_state st_{};
  bool done_ = false;
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

std::unique_ptr<ByteSource> open_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits,
                                       std::atomic<int64_t>* budget, Compression* detected) {
  auto in = std::make_unique<Input>(std::move(blob));
  size_t a = in->fill(4);
  auto b = reinterpret_cast<const unsigned char*>(in->data());
  Compression c = Compression::None;
  if (a >= 2 && b[0] == 0x1f && b[1] == 0x8b) c = Compression::Gzip;
  if (a >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) c = Compression::Zstd;
  if (detected) *detected = c;
  switch (c) {
    case Compression::Gzip: return std::make_unique<GzipSource>(std::move(in), budget);
    case Compression::Zstd: return std::make_unique<ZstdSource>(std::move(in), budget, limits.zstd_window_log_max);
    case Compression::None: break;
  }
  return std::make_unique<PlainSource>(std::move(in), budget);
}

}  // namespace wharf::squash
