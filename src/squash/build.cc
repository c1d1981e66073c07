#include "squash/build.h"

#include <fcntl.h>

#include <cstring>

#include "core/metrics.h"
#include "squash/index_codec.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <unistd.h>

namespace wharf::squash {

namespace {

// Reads what is left of a layer after its end-of-archive blocks.
void drain(ByteSource& src) {
  char buf[64 * 1024];
  while (src.read(buf, sizeof buf)) {
  }
}

LayerIndex index_one(std::unique_ptr<storage::BlobReader> blob, const Limits& limits, std::atomic<int64_t>* budget,
                     std::atomic<int64_t>* entries, uint64_t spacing, const MemoryCharge* charge) {
  LayerIndex idx;
  auto src = open_layer(std::move(blob), limits, budget, nullptr, &idx.checkpoints, spacing);
  TarReader tr(*src, limits);
  TarEntry e;
  size_t charged = 0;
  auto account = [&] {
    // Capacity, not size: a growing vector holds its old and new block for a moment.
    size_t now = idx.memory_bytes() * 3 / 2;
    if (charge && now > charged) (*charge)(now - charged);
    charged = std::max(charged, now);
  };
  while (tr.next(e)) {
    if (entries->fetch_sub(1) <= 0)
      throw LimitError("the image has more tar entries than squash.limits.max_entries allows");
    idx.add(e);
    if (idx.size() % 4096 == 0) account();
  }
  account();
  idx.shrink();
  drain(*src);  // to the blob's end, so a verifying reader checks its digest
  return idx;
}

}  // namespace

LayerIndex index_layer(std::unique_ptr<storage::BlobReader> blob, const Limits& limits, uint64_t spacing,
                       const MemoryCharge* charge) {
  std::atomic<int64_t> budget(static_cast<int64_t>(std::min<uint64_t>(limits.max_uncompressed_bytes, INT64_MAX)));
  std::atomic<int64_t> entries(static_cast<int64_t>(limits.max_entries));
  return index_one(std::move(blob), limits, &budget, &entries, spacing, charge);
}

std::vector<LayerIndex> index_layers(uint32_t n, const LayerOpener& open, const Limits& limits, unsigned parallel,
                                     IndexCache* cache, uint64_t spacing, const MemoryCharge* charge) {
  std::atomic<int64_t> budget(static_cast<int64_t>(std::min<uint64_t>(limits.max_uncompressed_bytes, INT64_MAX)));
  std::atomic<int64_t> entries(static_cast<int64_t>(limits.max_entries));
  std::vector<LayerIndex> out(n);
  std::atomic<uint32_t> next{0};
  auto worker = [&] {
    for (uint32_t i; (i = next.fetch_add(1)) < n;) {
      if (cache) {
        if (auto idx = cache->load(i)) {
          int64_t bytes = static_cast<int64_t>(indexed_bytes(*idx)), count = static_cast<int64_t>(idx->size());
          if (budget.fetch_sub(bytes) < bytes)
            throw LimitError(
                "the image is larger than the squash limit on uncompressed bytes (squash.limits.max_uncompressed_bytes)");
          if (entries.fetch_sub(count) < count)
            throw LimitError("the image has more tar entries than squash.limits.max_entries allows");
          if (charge) (*charge)(idx->memory_bytes());
          out[i] = std::move(*idx);
          continue;
        }
      }
      try {
        auto blob = open(i);
        if (!blob) throw std::runtime_error("layer " + std::to_string(i) + " is missing from storage");
        out[i] = index_one(std::move(blob), limits, &budget, &entries, spacing, charge);
      } catch (...) {
        if (cache) cache->abandon(i);
        throw;
      }
      if (cache) cache->store(i, out[i]);
    }
  };
  std::vector<std::future<void>> fs;
  for (unsigned t = 1; t < std::max(1u, std::min(parallel, n)); ++t) fs.push_back(std::async(std::launch::async, worker));
  std::exception_ptr err;
  try {
    worker();
  } catch (...) {
    err = std::current_exception();
    next = n;  // stop the others
  }
  for (auto& f : fs) {
    try {
      f.get();
    } catch (...) {
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  return out;
}

namespace {

// Writes the surviving entries of layer `l` (headers, data, padding, hardlinks).
// `src`: the layer's decoded stream when the caller has it (chunked layers).
void produce_layer(const std::vector<LayerIndex>& layers, const Plan& plan, uint32_t l, const LayerOpener& open,
                   const Limits& limits, Sink& out, const std::atomic<bool>& abort,
                   std::unique_ptr<ByteSource> src = nullptr) {
  static const char kZeros[512] = {};
  const auto& want = plan.data[l];
  std::string hdr;
  auto emit_header = [&](const OutEntry& o) {
    hdr.clear();
    write_header(out_entry(layers, plan, o), hdr);
    out.write(hdr.data(), hdr.size());
  };
  if (!src) {
    auto blob = open(l);
    if (!blob) throw std::runtime_error("layer " + std::to_string(l) + " is missing from storage");
    src = open_layer(std::move(blob), limits, nullptr);
  }
  TarReader tr(*src, limits);
  TarEntry e;
  std::vector<char> buf(1 << 20);
  uint32_t idx = 0;
  size_t k = 0;
  while (k < want.size()) {
    if (abort) throw std::runtime_error("squash aborted");
    if (!tr.next(e)) throw LayerError("layer " + std::to_string(l) + " changed since it was indexed");
    uint32_t this_idx = idx++;
    if (this_idx != plan.index(want[k])) continue;
    if (e.size != layers[l][this_idx].size || e.path != layers[l].path(this_idx))
      throw LayerError("layer " + std::to_string(l) + " changed since it was indexed");
    emit_header(want[k]);
    uint64_t left = e.size;
    while (left) {
      const char* p;
      size_t n = tr.view_data(&p, std::min<uint64_t>(left, buf.size()));
      if (!n) {
        n = tr.read_data(buf.data(), std::min<uint64_t>(left, buf.size()));
        p = buf.data();
      }
      out.write(p, n);
      left -= n;
    }
    out.write(kZeros, tar_padding(e.size));
    ++k;
    while (k < want.size() && want[k].hardlink()) emit_header(want[k++]);
  }
  while (tr.next(e)) {  // the rest, so a verifying reader sees the whole blob
  }
  drain(*src);
}

// A spill file: a layer's output written ahead by a helper thread.
class SpillSink : public Sink {
 public:
  explicit SpillSink(const std::string& dir) {
    std::string tmpl = dir + "/wharf-spill-XXXXXX";
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) throw std::runtime_error("cannot create a spill file in " + dir);
    ::unlink(tmpl.c_str());  // gone with the last descriptor, even after a crash
    buf_.reserve(kChunk);
  }
  ~SpillSink() override { ::close(fd_); }
  void write(const char* p, size_t n) override {
    if (buf_.size() + n > kChunk) flush();
    if (n >= kChunk) {
      put(p, n);
    } else {
      buf_.append(p, n);
    }
  }
  void flush() {
    put(buf_.data(), buf_.size());
    buf_.clear();
  }
  // Copies everything written into `out`.
  void replay(Sink& out) {
    flush();
    std::vector<char> b(kChunk);
    uint64_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd_, b.data(), b.size(), static_cast<off_t>(off));
      if (n < 0) throw std::runtime_error("cannot read a spill file");
      if (n == 0) break;
      out.write(b.data(), static_cast<size_t>(n));
      // The file is unlinked and read once: free what was replayed now (no
      // writeback), so its pages are reused instead of fresh ones.
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), n);
      off += static_cast<uint64_t>(n);
    }
  }

 private:
  static constexpr size_t kChunk = 1 << 20;
  void put(const char* p, size_t n) {
    while (n) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("cannot write a spill file (disk full?)");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  int fd_;
  std::string buf_;
};

// Decodes the chunks of checkpointed layers ahead of the writer, in output
// order, on `threads` helpers. At most threads+1 chunks are held at once
// (the one the writer reads and those being decoded ahead); their buffers
// are recycled, so the memory is touched once per build.
class ChunkPipeline {
 public:
  struct Item {
    uint32_t layer;
    uint32_t chunk;
    uint64_t len;
    bool trusted;  // the blob is unchanged since indexed: CRC-32 instead of SHA-256
  };
  ChunkPipeline(const std::vector<LayerIndex>& layers, std::vector<Item> items, const ChunkAccess& access,
                unsigned threads)
      : layers_(layers), items_(std::move(items)), access_(access), slots_(items_.size()), window_(threads + 1) {
    // Every buffer has the largest chunk's size, so a recycled one always
    // fits: no reallocation, and the heap does not grow with odd sizes.
    for (const auto& it : items_) buf_size_ = std::max<size_t>(buf_size_, it.len);
    try {
      for (unsigned t = 0; t < threads; ++t)
        threads_.emplace_back([this] {
          pthread_setname_np(pthread_self(), "wharf-inflate");
          work();
        });
    } catch (...) {  // no thread to be had: stop the ones started, then fail the build
      stop();
      throw;
    }
  }
  ~ChunkPipeline() { stop(); }
  // Item i's bytes, once decoded (rethrows its failure). REQUIRES: items are
  // taken in order, each released before the next is taken.
  std::string_view get(size_t i) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return slots_[i].state != Slot::Pending; });
    if (slots_[i].error) std::rethrow_exception(slots_[i].error);
    return {slots_[i].buf.p.get(), static_cast<size_t>(items_[i].len)};
  }
  void release(size_t i) {
    {
      std::lock_guard lk(mu_);
      pool_.push_back(std::move(slots_[i].buf));
      front_ = i + 1;
    }
    cv_.notify_all();
  }

 private:
  struct Buf {
    std::unique_ptr<char[]> p;  // buf_size_ bytes
  };
  struct Slot {
    enum { Pending, Ready, Failed } state = Pending;
    Buf buf;
    std::exception_ptr error;
  };

  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  void work() {
    for (;;) {
      size_t i;
      Buf buf;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || next_ >= items_.size() || next_ < front_ + window_; });
        if (stop_ || next_ >= items_.size()) return;
        i = next_++;
        if (!pool_.empty()) {
          buf = std::move(pool_.back());
          pool_.pop_back();
        }
      }
      std::exception_ptr err;
      try {
        decode(items_[i], buf);
      } catch (const LimitError&) {
        err = std::current_exception();
      } catch (const LayerError& e) {  // names the layer, so its index can be dropped
        err = std::make_exception_ptr(ChunkError("layer " + std::to_string(items_[i].layer) + ": " + e.what(),
                                                 items_[i].layer));
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard lk(mu_);
        slots_[i].buf = std::move(buf);
        slots_[i].error = err;
        slots_[i].state = err ? Slot::Failed : Slot::Ready;
      }
      cv_.notify_all();
    }
  }

  void decode(const Item& it, Buf& buf) {
    const InflateCheckpoints& cps = layers_[it.layer].checkpoints;
    const InflateChunk& c = cps.chunks[it.chunk];
    if (!buf.p) buf.p.reset(new char[buf_size_]);  // not value-initialised: the decoder fills it
    std::string state_copy;
    std::string_view state;
    if (it.chunk > 0) {
      if (cps.states) {
        if (c.state_off + c.state_len > cps.states->size()) throw LayerError("inflate checkpoint out of range");
        state = std::string_view(*cps.states).substr(c.state_off, c.state_len);
      } else {
        state_copy = access_.read_blob(cps.states_digest, c.state_off, c.state_len);
        state = state_copy;
      }
    }
    auto blob = access_.open_at(it.layer, c.in);
    if (!blob) throw LayerError("layer " + std::to_string(it.layer) + " is missing from storage");
    auto src = open_chunk(std::move(blob), cps, it.chunk, state, it.trusted);
    uint64_t got = 0;
    while (got < it.len) {
      if (stop_) throw std::runtime_error("squash aborted");
      size_t n = src->read(buf.p.get() + got, static_cast<size_t>(std::min<uint64_t>(it.len - got, 1 << 20)));
      if (!n) throw LayerError("layer " + std::to_string(it.layer) + " chunk ended early");
      got += n;
    }
    char extra;
    if (src->read(&extra, 1)) throw LayerError("layer " + std::to_string(it.layer) + " chunk is longer than indexed");
    core::Metrics::global().add("wharf_squash_chunks_decoded_total");
  }

  const std::vector<LayerIndex>& layers_;
  const std::vector<Item> items_;
  const ChunkAccess& access_;
  std::vector<Slot> slots_;
  const size_t window_;
  size_t buf_size_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Buf> pool_;
  size_t next_ = 0, front_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// A layer's stream read from the pipeline: items [first, end).
class PipelineSource : public ByteSource {
 public:
  PipelineSource(ChunkPipeline& p, size_t first, size_t end) : p_(p), cur_(first), end_(end) {}
  size_t read(char* buf, size_t n) override {
    const char* p = nullptr;
    size_t k = view(&p, n);
    if (k) std::memcpy(buf, p, k);
    return k;
  }
  size_t view(const char** p, size_t n) override {
    for (;;) {
      if (pos_ < view_.size()) {
        size_t k = std::min(n, view_.size() - pos_);
        *p = view_.data() + pos_;
        pos_ += k;
        return k;
      }
      if (held_) {
        p_.release(cur_++);
        held_ = false;
      }
      if (cur_ == end_) return 0;
      view_ = p_.get(cur_);
      held_ = true;
      pos_ = 0;
    }
  }

 private:
  ChunkPipeline& p_;
  size_t cur_, end_;
  std::string_view view_;
  size_t pos_ = 0;
  bool held_ = false;
};

class CountingSink : public Sink {
 public:
  explicit CountingSink(Sink& out) : out_(out) {}
  void write(const char* p, size_t n) override {
    out_.write(p, n);
    written += n;
  }
  uint64_t written = 0;

 private:
  Sink& out_;
};

}  // namespace

void write_layer(const std::vector<LayerIndex>& layers, const Plan& plan, const LayerOpener& open,
                 const Limits& limits, Sink& sink, unsigned parallel, const std::string& spill_dir,
                 const ChunkAccess* chunks) {
  static const char kZeros[1024] = {};
  CountingSink out(sink);
  std::string hdr;
  for (const auto& o : plan.headers_only) {
    hdr.clear();
    write_header(out_entry(layers, plan, o), hdr);
    out.write(hdr.data(), hdr.size());
  }
  std::vector<uint32_t> work;  // layers with something to write, in order
  for (uint32_t l = 0; l < plan.data.size(); ++l)
    if (!plan.data[l].empty()) work.push_back(l);
  std::atomic<bool> abort{false};
  // Chunks when most of the bytes are in checkpointed layers: the others are
  // then decoded by this thread while the helpers decode chunks ahead (a few
  // only). When most are not (a large zstd layer, say), the spill scheme
  // keeps both cores busy with whole layers instead.
  bool chunked = false;
  if (parallel > 1 && chunks) {
    uint64_t split = 0, whole = 0;
    for (uint32_t l : work) (layers[l].checkpoints.usable() ? split : whole) += indexed_bytes(layers[l]);
    chunked = split > 0 && whole <= split / 3;
  }

  if (chunked) {
    std::vector<ChunkPipeline::Item> items;
    std::vector<std::pair<size_t, size_t>> range(plan.data.size());
    for (uint32_t l : work) {
      const auto& cp = layers[l].checkpoints;
      if (!cp.usable()) continue;
      range[l].first = items.size();
      bool trusted = !cp.blob_stamp.empty() && chunks->unchanged && chunks->unchanged(l, cp.blob_stamp);
      for (size_t k = 0; k < cp.chunks.size(); ++k)
        items.push_back({l, static_cast<uint32_t>(k), cp.chunk_len(k), trusted});
      range[l].second = items.size();
    }
    ChunkPipeline pipe(layers, std::move(items), *chunks, parallel);
    for (uint32_t l : work) {
      std::unique_ptr<ByteSource> src;
      if (layers[l].checkpoints.usable()) src = std::make_unique<PipelineSource>(pipe, range[l].first, range[l].second);
      produce_layer(layers, plan, l, open, limits, out, abort, std::move(src));
    }
  } else if (parallel <= 1 || work.size() <= 1) {
    for (uint32_t l : work) produce_layer(layers, plan, l, open, limits, out, abort);
  } else {
    // Slots are claimed by the front (this thread, lowest first) and by the
    // helpers (highest first); they meet in the middle.
    struct Slot {
      enum { Free, Front, Helper, Done, Failed } state = Free;
      std::unique_ptr<SpillSink> spill;
      std::exception_ptr error;
    };
    std::vector<Slot> slots(work.size());
    std::mutex mu;
    std::condition_variable cv;
    auto helper = [&] {
      for (;;) {
        size_t k = slots.size();
        {
          std::lock_guard lk(mu);
          for (size_t i = slots.size(); i-- > 0;)
            if (slots[i].state == Slot::Free) {
              k = i;
              slots[i].state = Slot::Helper;
              break;
            }
        }
        if (k == slots.size() || abort) return;
        std::unique_ptr<SpillSink> spill;
        std::exception_ptr err;
        try {
          spill = std::make_unique<SpillSink>(spill_dir);
          produce_layer(layers, plan, work[k], open, limits, *spill, abort);
        } catch (...) {
          err = std::current_exception();
        }
        std::lock_guard lk(mu);
        slots[k].spill = std::move(spill);
        slots[k].error = err;
        slots[k].state = err ? Slot::Failed : Slot::Done;
        cv.notify_all();
      }
    };
    std::vector<std::thread> helpers;
    struct Joiner {
      std::vector<std::thread>& t;
      std::atomic<bool>& abort;
      ~Joiner() {
        abort = true;
        for (auto& th : t) th.join();
      }
    } joiner{helpers, abort};
    for (unsigned i = 1; i < std::min<size_t>(parallel, work.size()); ++i) helpers.emplace_back(helper);
    for (size_t k = 0; k < slots.size(); ++k) {
      std::unique_lock lk(mu);
      if (slots[k].state == Slot::Free) {
        slots[k].state = Slot::Front;
        lk.unlock();
        produce_layer(layers, plan, work[k], open, limits, out, abort);
        continue;
      }
      cv.wait(lk, [&] { return slots[k].state == Slot::Done || slots[k].state == Slot::Failed; });
      if (slots[k].error) std::rethrow_exception(slots[k].error);
      auto spill = std::move(slots[k].spill);
      lk.unlock();
      spill->replay(out);
    }
  }
  out.write(kZeros, 1024);
  if (out.written != plan.tar_size)
    throw std::logic_error("squash wrote " + std::to_string(out.written) + " bytes, planned " +
                           std::to_string(plan.tar_size));
}

}  // namespace wharf::squash
