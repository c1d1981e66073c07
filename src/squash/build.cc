#include "squash/build.h"

#include "squash/index_codec.h"

#include <algorithm>
#include <atomic>
#include <future>

namespace wharf::squash {

namespace {

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

void write_layer(const std::vector<LayerIndex>& layers, const Plan& plan, const LayerOpener& open,
                 const Limits& limits, Sink& out) {
  static const char kZeros[1024] = {};
  std::string hdr;
  uint64_t written = 0;
  auto emit = [&](const char* p, size_t n) {
    out.write(p, n);
    written += n;
  };
  auto emit_header = [&](const OutEntry& o) {
    hdr.clear();
    write_header(out_entry(layers, o), hdr);
    emit(hdr.data(), hdr.size());
  };
  for (const auto& o : plan.headers_only) emit_header(o);

  std::vector<char> buf(1 << 20);
  for (uint32_t l = 0; l < plan.data.size(); ++l) {
    const auto& want = plan.data[l];
    if (want.empty()) continue;  // nothing of this layer survives with data
    auto blob = open(l);
    if (!blob) throw std::runtime_error("layer " + std::to_string(l) + " is missing from storage");
    auto src = open_layer(std::move(blob), limits, nullptr);
    TarReader tr(*src, limits);
    TarEntry e;
    uint32_t idx = 0;
    size_t k = 0;
    while (k < want.size()) {
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
        emit(buf.data(), n);
        left -= n;
      }
      emit(kZeros, tar_padding(e.size));
      ++k;
      while (k < want.size() && want[k].hardlink) emit_header(want[k++]);
    }
  }
  emit(kZeros, 1024);
  if (written != plan.tar_size)
    throw std::logic_error("squash wrote " + std::to_string(written) + " bytes, planned " + std::to_string(plan.tar_size));
}

}  // namespace wharf::squash
