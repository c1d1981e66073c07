// The non-virtual parts of MetadataStore: rules every backend shares.
#include "meta/metadata_store.h"

#include <chrono>
#include <thread>

#include "core/clock.h"

namespace wharf::meta {

void MetadataStore::claim_blob_write(std::string_view digest) {
  // A remover holds its mark for one BlobStore::remove: milliseconds. Poll.
  for (;;) {
    int64_t now = core::unix_seconds();
    if (try_claim_blob_write(digest, now, now - kStaleDeleteMark)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

MetadataStore::Mark MetadataStore::remove_blob_if_unused(std::string_view digest, int64_t cutoff,
                                                         const std::function<void()>& remove) {
  Mark m = mark_blob_deleting(digest, cutoff, core::unix_seconds());
  if (m != Mark::Marked) return m;
  remove();  // throws: the mark stays, and goes stale (a later claim takes it over)
  finish_blob_delete(digest);
  return m;
}

}  // namespace wharf::meta
