// libFuzzer target for the squash engine's input side: the layer decoder
// (gzip / zstd / plain by magic), the tar reader and the merge planner. Any
// input must end in a clean result or a LayerError/LimitError — never a
// crash, a hang, a leak or an out-of-bounds access (ASan + UBSan).
#include <cstdint>
#include <cstring>
#include <string>

#include "squash/build.h"
#include "squash/index_codec.h"
#include "squash/layer_decoder.h"
#include "squash/plan.h"
#include "squash/tar.h"

using namespace wharf;
using namespace wharf::squash;

namespace {
class MemReader : public storage::BlobReader {
 public:
  MemReader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint64_t remaining() const override { return n_ - pos_; }
  size_t read(char* buf, size_t n) override {
    n = std::min(n, n_ - pos_);
    std::memcpy(buf, d_ + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  const uint8_t* d_;
  size_t n_, pos_ = 0;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The persisted index decoder sees stored bytes: damaged ones must be refused cleanly.
  if (auto idx = decode_index(std::string(reinterpret_cast<const char*>(data), size))) encode_index(*idx);
  Limits lim;
  lim.max_uncompressed_bytes = 64 << 20;
  lim.max_entries = 10000;
  lim.max_pax_bytes = 1 << 16;
  lim.max_path_bytes = 4096;
  lim.zstd_window_log_max = 20;
  try {
    std::atomic<int64_t> budget(static_cast<int64_t>(lim.max_uncompressed_bytes));
    auto src = open_layer(std::make_unique<MemReader>(data, size), lim, &budget);
    TarReader tr(*src, lim);
    LayerIndex idx;
    TarEntry e;
    char buf[4096];
    while (tr.next(e)) {
      if (idx.size() % 2)  // read some entries' data, skip others
        while (tr.read_data(buf, sizeof buf)) {
        }
      idx.add(e);
    }
    std::vector<LayerIndex> layers{idx, idx};  // the layer over itself exercises replacement paths
    Plan p = plan_merge(layers);
    std::string h;
    for (const auto& o : p.headers_only) write_header(out_entry(layers, p, o), h);
    for (const auto& per : p.data)
      for (const auto& o : per) write_header(out_entry(layers, p, o), h);
  } catch (const LayerError&) {
  }
  // Inflate checkpoints, differentially: a gzip input decoded in one piece
  // (recording a checkpoint every 512 bytes) and chunk by chunk from the saved
  // states must give the same bytes.
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    std::string whole;
    InflateCheckpoints cps;
    try {
      std::atomic<int64_t> budget(4 << 20);
      auto src = open_layer(std::make_unique<MemReader>(data, size), lim, &budget, nullptr, &cps, 512);
      char buf[1000];
      while (size_t n = src->read(buf, sizeof buf)) whole.append(buf, n);
    } catch (const LayerError&) {
      return 0;
    }
    if (!cps.usable()) return 0;
    std::string chunked;
    for (size_t k = 0; k < cps.chunks.size(); ++k) {
      const auto& c = cps.chunks[k];
      if (c.in > size) __builtin_trap();
      std::string_view state = k ? std::string_view(*cps.states).substr(c.state_off, c.state_len) : std::string_view();
      auto src = open_chunk(std::make_unique<MemReader>(data + c.in, size - c.in), cps, k, state);
      char buf[777];
      while (size_t n = src->read(buf, sizeof buf)) chunked.append(buf, n);  // a LayerError here is a defect
    }
    if (chunked != whole) __builtin_trap();
  }
  return 0;
}
