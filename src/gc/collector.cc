#include "gc/collector.h"

#include <vector>

#include "core/clock.h"
#include "core/metrics.h"

namespace wharf::gc {

Result collect(storage::BlobStore& blobs, meta::MetadataStore& meta, const Options& o) {
  Result res;
  int64_t cutoff = core::unix_seconds() - o.grace_seconds;
  // One pass over the store: removes (or lists) what nothing references.
  auto sweep = [&](bool first) {
    std::vector<storage::BlobStore::BlobInfo> candidates;
    blobs.for_each_blob([&](const storage::BlobStore::BlobInfo& b) {
      if (first) {
        ++res.reviewed;
        res.reviewed_bytes += b.size;
      }
      if (b.mtime < cutoff && !meta.blob_in_use(b.digest.str())) candidates.push_back(b);
    });
    for (auto& b : candidates) {
      if (!o.dry_run && meta.remove_blob_if_unused(b.digest.str(), cutoff, [&] { blobs.remove(b.digest); }) !=
                            meta::MetadataStore::Mark::Marked)
        continue;  // referenced or rewritten since it was listed: kept
      ++res.removed;
      res.removed_bytes += b.size;
      if (o.on_removed) o.on_removed(b);
    }
  };
  sweep(true);
  // Squash indexes of layers no longer stored go too, and a second pass takes
  // their index and inflate-state blobs (a layer pushed again is indexed again).
  for (const auto& l : meta.indexed_layers()) {
    auto d = core::Digest::parse(l);
    if (d && blobs.stat(*d)) continue;
    if (!o.dry_run) meta.delete_layer_index(l);
    ++res.indexes_forgotten;
  }
  if (res.indexes_forgotten && !o.dry_run) sweep(false);
  // Blobs of the second pass were not reviewed by the first when they were
  // written since; never report more removed than reviewed.
  res.kept = res.reviewed > res.removed ? res.reviewed - res.removed : 0;
  res.kept_bytes = res.reviewed_bytes > res.removed_bytes ? res.reviewed_bytes - res.removed_bytes : 0;
  if (!o.dry_run) {
    auto& m = core::Metrics::global();
    m.add("wharf_gc_runs_total");
    m.add("wharf_gc_blobs_total", res.reviewed, "outcome=\"reviewed\"");
    m.add("wharf_gc_blobs_total", res.kept, "outcome=\"kept\"");
    m.add("wharf_gc_blobs_total", res.removed, "outcome=\"removed\"");
    m.add("wharf_gc_bytes_total", res.reviewed_bytes, "outcome=\"reviewed\"");
    m.add("wharf_gc_bytes_total", res.kept_bytes, "outcome=\"kept\"");
    m.add("wharf_gc_bytes_total", res.removed_bytes, "outcome=\"removed\"");
  }
  return res;
}

}  // namespace wharf::gc
