#include "squash/offline.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/digest.h"
#include "image/manifest.h"
#include "image/platform.h"
#include "image/stored.h"
#include "squash/build.h"
#include "squash/docker_archive.h"

namespace wharf::squash {

using nlohmann::json;

namespace {

// Reads [offset, offset+len) of a file.
class SliceReader : public storage::BlobReader {
 public:
  SliceReader(const std::string& path, uint64_t off, uint64_t len) : off_(off), end_(off + len) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  }
  ~SliceReader() override { ::close(fd_); }
  uint64_t remaining() const override { return end_ - off_; }
  size_t read(char* buf, size_t n) override {
    n = std::min<uint64_t>(n, end_ - off_);
    if (!n) return 0;
    ssize_t r = ::pread(fd_, buf, n, static_cast<off_t>(off_));
    if (r < 0) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
    off_ += r;
    return static_cast<size_t>(r);
  }

 private:
  int fd_;
  uint64_t off_, end_;
};

uint64_t file_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open " + path);
  return static_cast<uint64_t>(f.tellg());
}

std::string slurp(storage::BlobReader& r) {
  std::string s;
  char buf[65536];
  while (size_t n = r.read(buf, sizeof buf)) s.append(buf, n);
  return s;
}

struct Source {
  std::string manifest_digest;  // for the history entry and the layer directory
  std::string config;
  // Layer i's bytes from offset `off` on.
  std::vector<std::function<std::unique_ptr<storage::BlobReader>(uint64_t off)>> layers;
};

Source from_oci(const std::string& spec, const std::string& platform) {
  std::string dir = spec, tag;
  if (auto c = spec.rfind(':'); c != std::string::npos && spec.find('/', c) == std::string::npos) {
    dir = spec.substr(0, c);
    tag = spec.substr(c + 1);
  }
  auto blob_path = [&](const std::string& digest) {
    auto d = core::Digest::parse(digest);
    if (!d) throw std::runtime_error("bad digest " + digest + " in " + dir);
    return dir + "/blobs/" + std::string(d->algorithm_name()) + "/" + d->hex();
  };
  auto read_blob = [&](const std::string& digest) {
    std::string p = blob_path(digest);
    SliceReader r(p, 0, file_size(p));
    return slurp(r);
  };
  std::ifstream f(dir + "/index.json");
  if (!f) throw std::runtime_error(dir + " is not an OCI image layout (no index.json)");
  json idx = json::parse(f);
  std::string digest;
  std::vector<std::string> names;
  for (const auto& m : idx.value("manifests", json::array())) {
    std::string name = m.value("annotations", json::object()).value("org.opencontainers.image.ref.name", "");
    names.push_back(name);
    if ((tag.empty() && digest.empty()) || (!tag.empty() && name == tag)) digest = m.value("digest", "");
  }
  if (digest.empty()) throw std::runtime_error("no image tagged \"" + tag + "\" in " + dir);
  if (tag.empty() && names.size() > 1) throw std::runtime_error(dir + " holds several images: name one as oci:DIR:TAG");
  std::string body = read_blob(digest);
  if (image::stored_is_index(body)) {
    auto want = image::parse_platform(platform.empty() ? "linux/amd64" : platform);
    if (!want) throw std::runtime_error("bad platform " + platform);
    auto c = image::choose_platform(body, *want);
    if (!c.digest) throw std::runtime_error("the image has no " + want->str() + " variant");
    digest = *c.digest;
    body = read_blob(digest);
  }
  auto img = image::stored_image(body);
  if (!img) throw std::runtime_error(digest + " in " + dir + " is not an image manifest");
  Source s;
  s.manifest_digest = digest;
  s.config = read_blob(img->config.digest);
  for (const auto& l : img->layers) {
    std::string p = blob_path(l.digest);
    uint64_t size = file_size(p);
    s.layers.push_back([p, size](uint64_t at) { return std::make_unique<SliceReader>(p, at, size - std::min(at, size)); });
  }
  return s;
}

Source from_docker_archive(const std::string& file, const Limits& limits) {
  // Index the archive's members, then read them in place.
  std::map<std::string, std::pair<uint64_t, uint64_t>> members;
  {
    auto src = open_layer(std::make_unique<SliceReader>(file, 0, file_size(file)), limits, nullptr);
    TarReader tr(*src, limits);
    TarEntry e;
    while (tr.next(e))
      if (e.type == EntryType::File) members[e.path] = {e.data_offset, e.size};
  }
  auto member = [&](const std::string& name) -> std::pair<uint64_t, uint64_t> {
    std::string clean;
    clean_path(name, clean);
    auto it = members.find(clean);
    if (it == members.end()) throw std::runtime_error(file + " has no member " + name);
    return it->second;
  };
  auto read_member = [&](const std::string& name) {
    auto [off, len] = member(name);
    SliceReader r(file, off, len);
    return slurp(r);
  };
  json mf = json::parse(read_member("manifest.json"));
  if (!mf.is_array() || mf.size() != 1) throw std::runtime_error(file + ": manifest.json must describe exactly one image");
  Source s;
  s.config = read_member(mf[0].value("Config", ""));
  s.manifest_digest = core::sha256_of(s.config).str();  // an archive has no manifest: name the config
  for (const auto& l : mf[0].value("Layers", json::array())) {
    auto where = member(l.get<std::string>());
    auto off = where.first, len = where.second;  // not a structured binding: clang 14 cannot capture one
    s.layers.push_back(
        [file, off, len](uint64_t at) { return std::make_unique<SliceReader>(file, off + at, len - std::min(at, len)); });
  }
  return s;
}

void write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("write: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void squash_offline(const OfflineOptions& o, int fd, const std::function<void(uint64_t, uint64_t)>& progress) {
  Source src;
  if (o.from.starts_with("oci:"))
    src = from_oci(o.from.substr(4), o.platform);
  else if (o.from.starts_with("docker-archive:"))
    src = from_docker_archive(o.from.substr(15), o.limits);
  else
    throw std::runtime_error("--from must be oci:DIR[:TAG] or docker-archive:FILE");
  if (src.layers.empty()) throw LayerError("the image has no layers: nothing to squash");
  LayerOpener open = [&](uint32_t i) { return src.layers[i](0); };
  // Inflate checkpoints are kept in memory here (no index store), so a large
  // gzip layer decodes on every core.
  ChunkAccess chunks;
  chunks.open_at = [&](uint32_t i, uint64_t off) { return src.layers[i](off); };
  chunks.read_blob = [](const std::string&, uint64_t, uint64_t) -> std::string {
    throw std::logic_error("offline squash keeps inflate states in memory");
  };
  auto idx = index_layers(src.layers.size(), open, o.limits, std::max(1u, std::thread::hardware_concurrency()));
  Plan plan = plan_merge(idx);
  ArchiveLayout layout;
  layout.layer_dir = core::sha256_of("wharf-squash-v1 " + src.manifest_digest).hex();
  layout.layer_size = plan.tar_size;
  if (!o.repo_tag.empty()) layout.repo_tag = o.repo_tag;
  std::string sizing = squashed_config(src.config, "sha256:" + std::string(64, '0'), src.manifest_digest);
  const uint64_t total = archive_size(layout, sizing);
  uint64_t done = 0;
  std::string buf;  // 1 MiB writes: headers come 512 bytes at a time
  buf.reserve(1 << 20);
  auto flush = [&] {
    write_all(fd, buf.data(), buf.size());
    done += buf.size();
    buf.clear();
    progress(done, total);
  };
  auto out = [&](const char* p, size_t n) {
    if (buf.size() + n > (1 << 20)) flush();
    if (n >= (1 << 20)) {
      write_all(fd, p, n);
      done += n;
      progress(done, total);
    } else {
      buf.append(p, n);
    }
  };
  std::string head = archive_head(layout);
  out(head.data(), head.size());
  struct HashingSink : Sink {
    std::function<void(const char*, size_t)> out;
    core::Hasher h;
    void write(const char* p, size_t n) override {
      h.update(p, n);
      out(p, n);
    }
  } sink;
  sink.out = out;
  write_layer(idx, plan, open, o.limits, sink, std::max(1u, std::thread::hardware_concurrency()), "/tmp", &chunks);
  std::string config = squashed_config(src.config, sink.h.finish().str(), src.manifest_digest);
  std::string tail = archive_tail(layout, config);
  out(tail.data(), tail.size());
  flush();
}

}  // namespace wharf::squash
