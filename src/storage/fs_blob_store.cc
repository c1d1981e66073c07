// Filesystem BlobStore driver. Durability: bytes are fsynced, then renamed
// into place, then the directory is fsynced, so a visible blob is a whole blob
// after a power cut.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "storage/fs_blob_store.h"
#include "core/crash.h"
#include "storage/blob_store.h"

namespace wharf::storage {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open dir", dir);
  ::fsync(fd);
  ::close(fd);
}

class FdReader : public BlobReader {
 public:
  FdReader(int fd, uint64_t offset, uint64_t size) : fd_(fd), off_(offset), size_(size) {}
  ~FdReader() override { ::close(fd_); }
  uint64_t remaining() const override { return size_ - off_; }
  size_t read(char* buf, size_t n) override {
    if (off_ >= size_) return 0;
    if (n > size_ - off_) n = size_ - off_;
    ssize_t r;
    do r = ::pread(fd_, buf, n, static_cast<off_t>(off_));
    while (r < 0 && errno == EINTR);
    if (r < 0) throw std::runtime_error(std::string("read blob: ") + std::strerror(errno));
    off_ += r;
    return static_cast<size_t>(r);
  }
  int native_fd() const override { return fd_; }
  uint64_t native_offset() const override { return off_; }
  // sendfile advanced the position behind our back.
 private:
  int fd_;
  uint64_t off_, size_;
};

// Appends to a file. After each write it asks the kernel to start writing
// those pages back (sync_file_range, SYNC_FILE_RANGE_WRITE: no waiting), so
// the fsync at commit finds little left to flush.
class FdWriter : public UploadWriter {
 public:
  // Writes from offset `pos` on.
  FdWriter(int fd, std::string path, uint64_t pos, bool may_bypass = false)
      : fd_(fd), path_(std::move(path)), may_bypass_(may_bypass), pos_(pos) {}
  ~FdWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
  }
  void write(const char* p, size_t n) override {
    if (direct_fd_ >= 0 && pos_ % kDirectAlign == 0 && reinterpret_cast<uintptr_t>(p) % kDirectAlign == 0) {
      // The aligned head goes to the device directly, the rest (a body's
      // last few bytes) through the page cache; fsync at commit covers both.
      size_t head = write_direct(p, n - n % kDirectAlign);
      pos_ += head;
      p += head;
      n -= head;
      if (!n) return;
    }
    // At pos_ explicitly: the O_DIRECT descriptor moved the end without moving this one's position.
    const uint64_t start = pos_;
    const size_t total = n;
    while (n) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(pos_));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("write", path_);
      }
      p += w;
      n -= static_cast<size_t>(w);
      pos_ += static_cast<uint64_t>(w);
    }
    if (total >= 64 * 1024) ::sync_file_range(fd_, static_cast<off_t>(start), static_cast<off_t>(total), SYNC_FILE_RANGE_WRITE);
    if (lag_ && pos_ > lag_ && pos_ - lag_ >= dropped_ + kDropStep) {
      // Wait for the writeback started long ago, then free those pages.
      uint64_t upto = pos_ - lag_;
      ::sync_file_range(fd_, static_cast<off_t>(dropped_), static_cast<off_t>(upto - dropped_),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      ::posix_fadvise(fd_, static_cast<off_t>(dropped_), static_cast<off_t>(upto - dropped_), POSIX_FADV_DONTNEED);
      dropped_ = upto;
    }
  }
  void drop_behind(uint64_t lag) override { lag_ = lag; }
  // O_DIRECT through a second descriptor of the same file (the first one
  // appends through the page cache). A filesystem without O_DIRECT refuses
  // the open: then everything goes through the cache as before.
  // 10 MiB pushes: the receiving thread no longer copies into fresh
  // page-cache pages (BENCHMARKS.md).
  void bypass_cache() override {
    if (may_bypass_ && direct_fd_ < 0 && fd_ >= 0) direct_fd_ = ::open(path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  }
  void close() override {
    if (fd_ >= 0) ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
    fd_ = direct_fd_ = -1;
  }
  // The driver state is the staged length in decimal.
  std::string state() const override { return std::to_string(pos_); }

 private:
  static constexpr uint64_t kDropStep = 4 << 20;
  static constexpr uint64_t kDirectAlign = 4096;
  // Writes as much of [p, p+n) as the device takes at pos_ (O_DIRECT);
  // returns how much. Short only when the device stopped short (the rest then
  // goes through the page cache, which reports the error if there is one).
  size_t write_direct(const char* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::pwrite(direct_fd_, p + done, n - done, static_cast<off_t>(pos_ + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("write", path_);
      if (w == 0 || static_cast<size_t>(w) % kDirectAlign) return done + static_cast<size_t>(w);
      done += static_cast<size_t>(w);
    }
    return done;
  }
  int fd_;
  int direct_fd_ = -1;
  std::string path_;
  bool may_bypass_;
  uint64_t pos_ = 0;
  uint64_t lag_ = 0, dropped_ = 0;
};

std::unique_ptr<BlobReader> open_reader(const fs::path& p, uint64_t offset) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return nullptr;
    fail("open", p);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("stat", p);
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size) offset = size;
  return std::make_unique<FdReader>(fd, offset, size);
}

// Writes `bytes` to `tmp`, fsyncs, renames to `dst`, fsyncs the directory.
void durable_write(const fs::path& tmp, const fs::path& dst, std::string_view bytes) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create", tmp);
  FdWriter w(fd, tmp, 0);
  w.write(bytes.data(), bytes.size());
  if (::fsync(fd) != 0) fail("fsync", tmp);
  w.close();
  fs::create_directories(dst.parent_path());
  if (::rename(tmp.c_str(), dst.c_str()) != 0) fail("rename", tmp);
  fsync_dir(dst.parent_path());
}

class FsBlobStore : public BlobStore {
 public:
  FsBlobStore(fs::path root, bool drop_committed) : root_(std::move(root)), drop_committed_(drop_committed) {
    fs::create_directories(root_ / "blobs");
    fs::create_directories(root_ / "uploads");
  }

  std::optional<uint64_t> stat(const core::Digest& d) override {
    struct stat st;
    if (::stat(blob_path(d).c_str(), &st) != 0) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
  }
  std::optional<std::string> stamp(const core::Digest& d) override {
    struct stat st;
    if (::stat(blob_path(d).c_str(), &st) != 0) return std::nullopt;
    return "fs:" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) +
           ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
           std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
  }
  std::unique_ptr<BlobReader> open(const core::Digest& d, uint64_t offset) override {
    return open_reader(blob_path(d), offset);
  }
  void put(const core::Digest& d, std::string_view bytes) override {
    auto dst = blob_path(d);
    durable_write(root_ / "uploads" / (".put-" + d.hex() + "-" + std::to_string(::getpid())), dst, bytes);
  }
  void remove(const core::Digest& d) override {
    std::error_code ec;
    fs::remove(blob_path(d), ec);
  }

  void for_each_blob(const std::function<void(const BlobInfo&)>& fn) override {
    for (const char* algo : {"sha256", "sha512"}) {
      std::error_code ec;
      fs::path dir = root_ / "blobs" / algo;
      if (!fs::exists(dir, ec)) continue;
      for (auto& e : fs::recursive_directory_iterator(dir, ec)) {
        if (!e.is_regular_file()) continue;
        auto d = core::Digest::parse(std::string(algo) + ":" + e.path().filename().string());
        if (!d) continue;  // not a blob of ours
        struct stat st;
        if (::stat(e.path().c_str(), &st) != 0) continue;
        fn(BlobInfo{*d, static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtime)});
      }
    }
  }
  Capabilities capabilities() const override { return {.read_staged = true}; }

  // Driver state: the upload's length in decimal. The staged file may be
  // longer (an append that failed half-way, or a writer still writing): the
  // bytes past the state's length are not part of the upload and the next
  // append or the commit cuts them off. An empty state (a session stored by
  // an older version) means the whole file.
  std::string create_upload(const std::string& id) override {
    auto p = upload_path(id);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail("create upload", p);
    ::close(fd);
    return "0";
  }
  std::optional<uint64_t> upload_size(const std::string& id, std::string_view state) override {
    struct stat st;
    auto p = upload_path(id);
    if (::stat(p.c_str(), &st) != 0) return std::nullopt;
    return staged_length(p, state, static_cast<uint64_t>(st.st_size));
  }
  std::unique_ptr<UploadWriter> append_upload(const std::string& id, std::string_view state) override {
    auto p = upload_path(id);
    uint64_t len;
    int fd = open_cut_to_state(p, state, len);
    return std::make_unique<FdWriter>(fd, p, len, drop_committed_);
  }
  std::unique_ptr<BlobReader> read_upload(const std::string& id, uint64_t offset) override {
    return open_reader(upload_path(id), offset);
  }
  void commit_upload(const std::string& id, std::string_view state, const core::Digest& d) override {
    auto src = upload_path(id);
    auto dst = blob_path(d);
    uint64_t len;
    int fd = open_cut_to_state(src, state, len);
    ::futimens(fd, nullptr);  // mtime = commit time: what wharf gc compares with its grace period
    if (::fsync(fd) != 0) {
      ::close(fd);
      fail("fsync", src);
    }
    // Durable now, so its pages are clean: hand them back for the next upload
    // to reuse (a push rarely reads its bytes back; see make_fs_blob_store).
    if (drop_committed_) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    core::crash_point("blob-written");
    fs::create_directories(dst.parent_path());
    core::crash_point("before-blob-rename");
    if (::rename(src.c_str(), dst.c_str()) != 0) fail("rename", src);
    fsync_dir(dst.parent_path());
    core::crash_point("after-blob-rename");
  }
  void delete_upload(const std::string& id, std::string_view) override {
    std::error_code ec;
    fs::remove(upload_path(id), ec);
  }
  void probe() override {
    auto p = root_ / "uploads" / (".probe-" + std::to_string(::getpid()));
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("probe", p);
    if (::write(fd, "ok", 2) != 2) {
      ::close(fd);
      fail("probe write", p);
    }
    ::close(fd);
    fs::remove(p);
  }

 private:
  fs::path blob_path(const core::Digest& d) const {
    return root_ / "blobs" / std::string(d.algorithm_name()) / d.hex().substr(0, 2) / d.hex();
  }
  fs::path upload_path(const std::string& id) const {
    for (char c : id)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) throw std::invalid_argument("bad upload id");
    return root_ / "uploads" / id;
  }
  // The length `state` names; the file's length `actual` for an empty state.
  static uint64_t staged_length(const fs::path& p, std::string_view state, uint64_t actual) {
    if (state.empty()) return actual;
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(state.data(), state.data() + state.size(), n);
    if (ec != std::errc() || end != state.data() + state.size())
      throw std::runtime_error("upload " + p.string() + ": unreadable driver state");
    if (n > actual) throw std::runtime_error("upload " + p.string() + " holds fewer bytes than its state says");
    return n;
  }
  // Opens the staged file for writing, cut to the length `state` names
  // (stored in `len`); the caller closes the descriptor.
  static int open_cut_to_state(const fs::path& p, std::string_view state, uint64_t& len) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("open upload", p);
    try {
      struct stat st;
      if (::fstat(fd, &st) != 0) fail("stat upload", p);
      len = staged_length(p, state, static_cast<uint64_t>(st.st_size));
      if (len < static_cast<uint64_t>(st.st_size) && ::ftruncate(fd, static_cast<off_t>(len)) != 0)
        fail("truncate upload", p);
    } catch (...) {
      ::close(fd);
      throw;
    }
    return fd;
  }
  fs::path root_;
  bool drop_committed_;
};

}  // namespace

std::unique_ptr<BlobStore> make_fs_blob_store(const std::string& root, bool drop_committed) {
  return std::make_unique<FsBlobStore>(root, drop_committed);
}

}  // namespace wharf::storage
