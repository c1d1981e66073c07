// `wharf migrate --from OLD.yaml --to NEW.yaml`: copies a registry from one
// pair of stores to another (the embedded SQLite + filesystem to PostgreSQL
// + S3, or any pair). Blobs first, each verified by its digest on the way
// and skipped when the target has it with the same size (so a run that was
// interrupted goes on where it stopped, and a second run copies only what
// was pushed since); then every metadata and account row (meta/copy.h),
// replacing the target's. Run it while the old registry serves, then once
// more with the old registry stopped (the final pass), then start the new
// one: nothing written before the final pass is lost.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/stores.h"
#include "core/digest.h"
#include "meta/copy.h"

namespace wharf::cli {

namespace {

std::string mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

// One line redrawn in place on a terminal; nothing into a file or pipe.
void bar(const char* what, uint64_t done, uint64_t total, uint64_t bytes) {
  static const bool tty = ::isatty(STDERR_FILENO);
  if (!tty) return;
  int width = 30, fill = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r%-6s [%s%s] %llu/%llu  %s   ", what, std::string(fill, '#').c_str(),
               std::string(width - fill, ' ').c_str(), static_cast<unsigned long long>(done),
               static_cast<unsigned long long>(total), mib(bytes).c_str());
  if (done == total) std::fprintf(stderr, "\n");
}

}  // namespace

int migrate(const core::Config& from, const core::Config& to) {
  check_drivers(from);
  check_drivers(to);
  auto t0 = std::chrono::steady_clock::now();
  auto src_blobs = open_blob_store(from);
  auto dst_blobs = open_blob_store(to);
  // Opening the stores creates (or migrates) their schemas.
  open_metadata_store(from, false);
  open_account_store(from);
  auto dst_meta = open_metadata_store(to, false);
  open_account_store(to);

  std::vector<storage::BlobStore::BlobInfo> blobs;
  src_blobs->for_each_blob([&](const storage::BlobStore::BlobInfo& b) { blobs.push_back(b); });
  uint64_t copied = 0, skipped = 0, bytes = 0, done = 0;
  std::vector<char> buf(8 << 20);
  for (const auto& b : blobs) {
    ++done;
    if (auto have = dst_blobs->stat(b.digest); have && *have == b.size) {
      ++skipped;
      bar("blobs", done, blobs.size(), bytes);
      continue;
    }
    auto in = src_blobs->open(b.digest);
    if (!in) continue;  // removed meanwhile (gc): nothing references it
    std::string id = "migrate-" + b.digest.hex().substr(0, 32);
    std::string state = dst_blobs->create_upload(id);
    try {
      auto out = dst_blobs->append_upload(id, state);
      core::Hasher h(b.digest.algorithm());
      while (size_t n = in->read(buf.data(), buf.size())) {
        h.update(buf.data(), n);
        out->write(buf.data(), n);
        bytes += n;
      }
      out->close();
      state = out->state();
      if (h.finish() != b.digest)
        throw std::runtime_error("blob " + b.digest.str() + " in the source does not match its digest: not copied");
      dst_meta->claim_blob_write(b.digest.str());
      dst_blobs->commit_upload(id, state, b.digest);
    } catch (...) {
      dst_blobs->delete_upload(id, state);
      throw;
    }
    ++copied;
    bar("blobs", done, blobs.size(), bytes);
  }
  if (blobs.empty()) bar("blobs", 0, 0, 0);

  meta::SqlEndpoint src_sql = sql_endpoint(from), dst_sql = sql_endpoint(to);
  uint64_t rows = meta::copy_sql(src_sql, dst_sql, [](const meta::CopyProgress& p) {
    if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\rrows   %-14s %llu   ", p.table.c_str(),
                                               static_cast<unsigned long long>(p.rows));
  });
  if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("migrated: %llu blobs copied (%s), %llu already there, %llu metadata and account rows, in %.1f s\n",
              static_cast<unsigned long long>(copied), mib(bytes).c_str(), static_cast<unsigned long long>(skipped),
              static_cast<unsigned long long>(rows), secs);
  return 0;
}

}  // namespace wharf::cli
