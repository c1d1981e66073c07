#include "squash/build.h"

#include <fcntl.h>

#include "squash/index_codec.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

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
                     std::atomic<int64_t>* entries) {
  LayerIndex idx;
  auto src = open_layer(std::move(blob), limits, budget);
  TarReader tr(*src, limits);
  TarEntry e;
  while (tr.next(e)) {
    if (entries->fetch_sub(1) <= 0)
      throw LimitError("the image has more tar entries than squash.limits.max_entries allows");
    idx.entries.push_back(std::move(e));
  }
  drain(*src);  // to the blob's end, so a verifying reader checks its digest
  return idx;
}

}  // namespace

std::vector<LayerIndex> index_layers(uint32_t n, const LayerOpener& open, const Limits& limits, unsigned parallel,
                                     IndexCache* cache) {
  std::atomic<int64_t> budget(static_cast<int64_t>(std::min<uint64_t>(limits.max_uncompressed_bytes, INT64_MAX)));
  std::atomic<int64_t> entries(static_cast<int64_t>(limits.max_entries));
  std::vector<LayerIndex> out(n);
  std::atomic<uint32_t> next{0};
  auto worker = [&] {
    for (uint32_t i; (i = next.fetch_add(1)) < n;) {
      if (cache) {
        if (auto idx = cache->load(i)) {
          int64_t bytes = static_cast<int64_t>(indexed_bytes(*idx)), count = static_cast<int64_t>(idx->entries.size());
          if (budget.fetch_sub(bytes) < bytes)
            throw LimitError(
                "the image is larger than the squash limit on uncompressed bytes (squash.limits.max_uncompressed_bytes)");
          if (entries.fetch_sub(count) < count)
            throw LimitError("the image has more tar entries than squash.limits.max_entries allows");
          out[i] = std::move(*idx);
          continue;
        }
      }
      auto blob = open(i);
      if (!blob) throw std::runtime_error("layer " + std::to_string(i) + " is missing from storage");
      out[i] = index_one(std::move(blob), limits, &budget, &entries);
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
void produce_layer(const std::vector<LayerIndex>& layers, const Plan& plan, uint32_t l, const LayerOpener& open,
                   const Limits& limits, Sink& out, const std::atomic<bool>& abort) {
  static const char kZeros[512] = {};
  const auto& want = plan.data[l];
  std::string hdr;
  auto emit_header = [&](const OutEntry& o) {
    hdr.clear();
    write_header(out_entry(layers, o), hdr);
    out.write(hdr.data(), hdr.size());
  };
  auto blob = open(l);
  if (!blob) throw std::runtime_error("layer " + std::to_string(l) + " is missing from storage");
  auto src = open_layer(std::move(blob), limits, nullptr);
  TarReader tr(*src, limits);
  TarEntry e;
  std::vector<char> buf(1 << 20);
  uint32_t idx = 0;
  size_t k = 0;
  while (k < want.size()) {
    if (abort) throw std::runtime_error("squash aborted");
    if (!tr.next(e)) throw LayerError("layer " + std::to_string(l) + " changed since it was indexed");
    uint32_t this_idx = idx++;
    if (this_idx != want[k].index) continue;
    const auto& def = layers[l].entries[this_idx];
    if (e.size != def.size || e.path != def.path)
      throw LayerError("layer " + std::to_string(l) + " changed since it was indexed");
    emit_header(want[k]);
    uint64_t left = e.size;
    while (left) {
      size_t n = tr.read_data(buf.data(), std::min<uint64_t>(left, buf.size()));
      out.write(buf.data(), n);
      left -= n;
    }
    out.write(kZeros, tar_padding(e.size));
    ++k;
    while (k < want.size() && want[k].hardlink) emit_header(want[k++]);
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
                 const Limits& limits, Sink& sink, unsigned parallel, const std::string& spill_dir) {
  static const char kZeros[1024] = {};
  CountingSink out(sink);
  std::string hdr;
  for (const auto& o : plan.headers_only) {
    hdr.clear();
    write_header(out_entry(layers, o), hdr);
    out.write(hdr.data(), hdr.size());
  }
  std::vector<uint32_t> work;  // layers with something to write, in order
  for (uint32_t l = 0; l < plan.data.size(); ++l)
    if (!plan.data[l].empty()) work.push_back(l);
  std::atomic<bool> abort{false};

  if (parallel <= 1 || work.size() <= 1) {
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
