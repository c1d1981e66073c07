// The maintenance commands: wharf gc, wharf squash prime, wharf squash --from.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/stores.h"
#include "core/clock.h"
#include "gc/collector.h"
#include "squash/offline.h"
#include "squash/policy.h"
#include "squash/service.h"

namespace wharf::cli {

// `wharf gc`: removes blobs nothing references any more (deleted manifests,
// unlinked blobs, evicted squash entries); gc/collector.h. Safe while the
// server runs (on any number of replicas).
int gc(const core::Config& cfg, bool dry_run, int grace_minutes) {
  auto blobs = open_blob_store(cfg);
  auto meta = open_metadata_store(cfg, false);
  gc::Options o;
  o.grace_seconds = int64_t{grace_minutes} * 60;
  o.dry_run = dry_run;
  if (dry_run)
    o.on_removed = [](const storage::BlobStore::BlobInfo& b) {
      std::cout << "would remove " << b.digest.str() << " (" << b.size << " bytes)" << std::endl;
    };
  auto r = gc::collect(*blobs, *meta, o);
  std::cout << (dry_run ? "would remove " : "removed ") << r.removed << " of " << r.reviewed << " blobs ("
            << r.removed_bytes << " bytes); kept " << r.kept;
  if (r.indexes_forgotten)
    std::cout << "; " << (dry_run ? "would forget " : "forgot ") << r.indexes_forgotten << " squash layer indexes";
  std::cout << std::endl;
  return 0;
}

// `wharf squash prime NAME:TAG|NAME@DIGEST`: builds the cache entry in this
// process against the same stores the server uses (safe while it runs).
int squash_prime(const core::Config& cfg, const std::string& ref, const std::string& platform) {
  auto at = ref.find('@');
  auto colon = ref.rfind(':');
  std::string name, tag;
  if (at != std::string::npos) {
    name = ref.substr(0, at);
    tag = ref.substr(at + 1);
  } else if (colon != std::string::npos && ref.find('/', colon) == std::string::npos) {
    name = ref.substr(0, colon);
    tag = ref.substr(colon + 1);
  } else {
    throw std::runtime_error("give the image as NAME:TAG or NAME@DIGEST");
  }
  auto blobs = open_blob_store(cfg);
  auto meta = open_metadata_store(cfg, false);
  squash::Service svc(squash::service_options(cfg.squash, cfg.data_dir), *blobs, *meta);
  auto img = svc.resolve(name, tag, platform);
  // Another process sharing the metadata store may hold the build's lease:
  // then its entry is waited for (or the lease, should that process die).
  auto job = svc.acquire(img).job;
  for (bool told = false; !job; job = svc.acquire(img).job) {
    if (!told) std::cerr << "another process is building this squash; waiting for it" << std::endl;
    told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  while (job->state() != squash::Job::State::Done && job->state() != squash::Job::State::Failed)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (job->state() == squash::Job::State::Failed) std::rethrow_exception(job->failure());
  std::cout << "primed " << name << ":" << tag << " (" << img.manifest_digest << "): layer " << job->layer_size()
            << " bytes" << std::endl;
  return 0;
}


// `wharf squash --from SRC --to FILE|-`
int squash_offline_cmd(const core::Config& cfg, const std::string& from, const std::string& to,
                       const std::string& platform, const std::string& tag) {
  squash::OfflineOptions o;
  o.from = from;
  o.platform = platform;
  o.repo_tag = tag;
  o.limits = cfg.squash.limits;
  int fd = 1;
  std::string tmp;  // a regular file is written beside its name, then renamed over it
  struct stat st;
  if (to != "-" && ::stat(to.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device or a fifo (--to /dev/null): written in place. Renaming a file
    // over it would replace /dev/null with a regular file.
    fd = ::open(to.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + to);
  } else if (to != "-") {
    tmp = to + ".partial";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + tmp);
  } else if (isatty(1)) {
    throw std::runtime_error("refusing to write a tar archive to a terminal: use --to FILE or a pipe");
  }
  bool tty = isatty(2);
  auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  auto progress = [&](uint64_t done, uint64_t total) {
    if (!tty) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    double secs = std::max(1e-3, std::chrono::duration<double>(now - t0).count());
    double rate = done / secs;
    double eta = rate > 0 ? (total - done) / rate : 0;
    int width = 30, fill = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r[%s%s] %6.1f/%6.1f MiB %7.1f MiB/s ETA %4.0fs", std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), done / 1048576.0, total / 1048576.0, rate / 1048576.0, eta);
    if (done >= total) std::fprintf(stderr, "\n");
  };
  try {
    squash::squash_offline(o, fd, progress);
  } catch (...) {
    if (fd != 1) ::close(fd);
    if (!tmp.empty()) ::unlink(tmp.c_str());
    throw;
  }
  if (!tmp.empty()) {
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), to.c_str()) != 0)
      throw std::runtime_error("cannot write " + to);
  } else if (fd != 1 && ::close(fd) != 0) {
    throw std::runtime_error("cannot write " + to);
  }
  return 0;
}

}  // namespace wharf::cli
