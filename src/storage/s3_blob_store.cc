// The S3 driver. Keys (under the configured prefix):
//   blobs/<algo>/<hex>           a committed blob
//   uploads/<id>/info            an upload exists (empty marker)
//   uploads/<id>/tail-<n>        the upload's bytes after its last full part (n grows per append)
//   uploads/<id>/data            its multipart upload, once it has a full part
// The upload's driver state (JSON): the multipart upload id, its parts
// (number, ETag, size), the tail's number and size, and the total size. Every
// byte the state counts is durable in the store. A commit completes the
// multipart upload (the tail as its last part, copied server-side) and
// copies the object to its blob key server-side (CopyObject up to 5 GiB,
// UploadPartCopy beyond): the bytes never pass through wharf again.
#include "storage/s3_blob_store.h"

#include "core/crash.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <ctime>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <random>
#include <stdexcept>

namespace wharf::storage {

namespace {

using nlohmann::json;
using s3::Client;
using s3::Request;
using s3::S3Error;

constexpr uint64_t kMaxCopy = 5ull << 30;   // CopyObject's limit
constexpr uint64_t kCopyPart = 1ull << 30;  // UploadPartCopy ranges beyond it

std::string random_stamp() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng());
}

void check_id(const std::string& id) {
  if (id.empty() || id.size() > 128) throw std::invalid_argument("bad upload id");
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) throw std::invalid_argument("bad upload id");
}

struct Part {
  int number = 0;
  std::string etag;
  uint64_t size = 0;
};

struct State {
  std::string upload_id;  // multipart; "" until the first full part
  std::vector<Part> parts;
  int tail = 0;  // number of the tail object holding the last tail_size bytes
  uint64_t tail_size = 0;
  uint64_t size = 0;

  static State parse(std::string_view s) {
    State st;
    if (s.empty()) return st;
    auto j = json::parse(s, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw std::runtime_error("s3: unreadable upload state");
    st.upload_id = j.value("u", "");
    for (const auto& p : j.value("p", json::array())) st.parts.push_back({p.at(0), p.at(1), p.at(2)});
    st.tail = j.value("t", 0);
    st.tail_size = j.value("ts", uint64_t{0});
    st.size = j.value("s", uint64_t{0});
    return st;
  }
  std::string str() const {
    json p = json::array();
    for (const auto& x : parts) p.push_back(json::array({x.number, x.etag, x.size}));
    return json{{"u", upload_id}, {"p", p}, {"t", tail}, {"ts", tail_size}, {"s", size}}.dump();
  }
};

// Large buffers (a part being filled, a reader's ring) kept for reuse, up to
// kKeepBytes idle. glibc maps an allocation this large afresh each time, and
// every 4 KiB of it then costs a page fault on first touch: perf of a 32 MiB
// PATCH showed a third of wharf's CPU in those faults and in the memmoves of
// a part gathered in a growing std::string.
class Spares {
 public:
  struct Block {
    std::unique_ptr<char[]> p;  // contents undefined
    size_t cap = 0;
  };
  static Spares& global() {
    static Spares s;
    return s;
  }
  // A block of at least `size` bytes (and not more than twice that).
  Block take(size_t size) {
    {
      std::lock_guard lk(mu_);
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].cap >= size && free_[i].cap / 2 <= size) {
          Block b = std::move(free_[i]);
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          kept_ -= b.cap;
          return b;
        }
    }
    return {std::unique_ptr<char[]>(new char[size]), size};
  }
  void give(Block b) {
    if (!b.p || b.cap < kMinKept) return;  // small ones come cheaply from malloc's heap
    std::lock_guard lk(mu_);
    if (kept_ + b.cap > kKeepBytes) return;  // freed
    kept_ += b.cap;
    free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kKeepBytes = 64 << 20;
  static constexpr size_t kMinKept = 1 << 20;
  std::mutex mu_;
  std::vector<Block> free_;  // guarded by mu_
  size_t kept_ = 0;          // guarded by mu_: the sum of free_'s caps
};

class S3Store;

// Reads a blob from `offset` to its end in one GET that a thread of the
// reader's own runs ahead of the caller, up to `window` bytes (read_chunk),
// so fetching overlaps with whatever the caller does with the bytes (sending
// them to a client). The GET's answer tells the blob's size (or that it is
// missing): no HEAD before it. A GET that fails is retried from where it
// stopped (up to 4 times without progress). A caller slower than the store
// pauses the GET: the thread stops it once the window has stayed full for a
// while (S3 would cut a stalled transfer off anyway) and sends a new ranged
// GET when there is room again. Destroying the reader stops the thread.
class S3Reader : public BlobReader {
 public:
  enum class Opened { Ok, Missing, PastEnd /* offset >= size: no range to GET */ };
  // Starts the GET; wait_opened() says how it was answered.
  S3Reader(const Client& c, std::string key, uint64_t offset, uint64_t window)
      : c_(c), key_(std::move(key)), pos_(offset), window_(std::max<uint64_t>(window, 1 << 20)) {
    worker_ = std::thread([this] { run(); });
  }
  // A reader at the end of a blob of `size` bytes (offset == size).
  S3Reader(const Client& c, std::string key, uint64_t size)
      : c_(c), key_(std::move(key)), pos_(size), window_(0), size_(size), opened_(Opened::Ok), done_(true) {}
  ~S3Reader() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    Spares::global().give(std::move(ring_));
  }
  // Waits for the GET's first answer; throws its error when it failed.
  Opened wait_opened() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return opened_ || done_; });
    if (opened_) return *opened_;
    if (error_) std::rethrow_exception(error_);
    throw std::runtime_error("s3: GET " + key_ + " stopped before its answer");
  }
  uint64_t remaining() const override { return size_ - pos_; }
  size_t read(char* out, size_t n) override {
    std::unique_lock lk(mu_);
    // As much as the caller asked for, when that much can come: fewer,
    // larger hand-overs (each may be a hop between threads for the caller).
    uint64_t want = std::min<uint64_t>({n, ring_size_, size_ - pos_});
    cv_.wait(lk, [&] { return buffered_ >= want || done_; });
    if (buffered_ == 0) {
      if (error_) std::rethrow_exception(error_);
      return 0;
    }
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, buffered_));  // all that is there, up to n
    size_t first = std::min(k, ring_size_ - head_);
    std::memcpy(out, ring_.p.get() + head_, first);
    std::memcpy(out + first, ring_.p.get(), k - first);
    head_ = (head_ + k) % ring_size_;
    buffered_ -= k;
    cv_.notify_all();  // room for the fetching thread
    pos_ += k;
    return k;
  }

 private:
  // The size from the first answer (206: Content-Range's total; 200: the
  // whole object, only right from offset 0), and the ring sized for it.
  void open(const s3::Response& resp) {
    uint64_t total;
    if (resp.status == 206) {
      auto cr = resp.header("content-range");  // bytes a-b/total
      auto slash = cr.rfind('/');
      if (slash == std::string::npos) throw std::runtime_error("s3: GET " + key_ + ": no total in Content-Range");
      total = std::stoull(cr.substr(slash + 1));
    } else {
      if (pos_ != 0) throw std::runtime_error("s3: GET " + key_ + ": the store ignored the Range");
      total = std::stoull(resp.header("content-length"));
    }
    std::lock_guard lk(mu_);
    size_ = total;
    ring_size_ = static_cast<size_t>(std::min(window_, total - std::min(pos_, total)));
    ring_ = Spares::global().take(ring_size_);  // not zeroed: every byte is written before it is read
    opened_ = Opened::Ok;
    cv_.notify_all();
  }
  void run() {
    uint64_t at = pos_;  // the next byte to fetch
    int failures = 0;
    std::exception_ptr err;
    bool opened = false;  // (this thread's copy of opened_)
    while (!opened || at < size_) {
      {  // a paused GET resumes once the window is half empty
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || buffered_ <= ring_size_ / 2; });
        if (stop_) break;
      }
      bool paused = false;
      uint64_t before = at;
      Request r;
      r.key = key_;
      r.headers = {{"Range", "bytes=" + std::to_string(at) + "-" + (opened ? std::to_string(size_ - 1) : "")}};
      std::exception_ptr open_error;  // (nothing may be thrown through curl's callbacks)
      r.on_headers = [&](const s3::Response& resp) {
        if (opened) return;
        try {
          open(resp);
          opened = true;
        } catch (...) {
          open_error = std::current_exception();
        }
      };
      r.sink = [&](const char* p, size_t k) {
        if (open_error) return false;
        while (k) {  // into the ring, as room allows
          std::unique_lock lk(mu_);
          if (!cv_.wait_for(lk, std::chrono::seconds(5), [&] { return stop_ || buffered_ < ring_size_; })) {
            paused = true;  // the caller is slow: stop this GET, resume later
            return false;
          }
          if (stop_) return false;
          size_t m = std::min<uint64_t>(k, ring_size_ - buffered_);
          size_t tail = (head_ + buffered_) % ring_size_;
          size_t first = std::min(m, ring_size_ - tail);
          std::memcpy(ring_.p.get() + tail, p, first);
          std::memcpy(ring_.p.get(), p + first, m - first);
          buffered_ += m;
          at += m;
          p += m;
          k -= m;
          cv_.notify_all();
        }
        return true;
      };
      try {
        c_.send(r);
        if (open_error) std::rethrow_exception(open_error);  // (an answer without a body: told after the transfer)
        if (!opened) throw std::runtime_error("s3: GET " + key_ + ": no answer to take the size from");
        if (at < size_) throw S3Error("s3: GET " + key_ + ": the object ended early", 0, "");
      } catch (const S3Error& e) {
        bool stopped;
        {
          std::lock_guard lk(mu_);
          stopped = stop_;
        }
        if (stopped) break;
        if (open_error) {
          err = open_error;
          break;
        }
        if (!opened && (e.status == 404 || e.status == 416)) {  // an answer, not a failure
          std::lock_guard lk(mu_);
          opened_ = e.status == 404 ? Opened::Missing : Opened::PastEnd;
          break;
        }
        if (paused) continue;
        failures = at > before ? 1 : failures + 1;
        if ((e.status != 0 && e.status < 500) || failures > 4) {
          err = std::current_exception();
          break;
        }
      } catch (...) {
        err = std::current_exception();
        break;
      }
    }
    std::lock_guard lk(mu_);
    error_ = err;
    done_ = true;
    cv_.notify_all();
  }

  const Client& c_;
  std::string key_;
  uint64_t pos_;  // the caller's position (touched by the caller only, and by open() before the caller reads)
  const uint64_t window_;
  std::thread worker_;
  // State below is protected by mu_ (size_, ring_size_ and ring_ are set
  // once, by open(), before opened_).
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t size_ = 0;
  size_t ring_size_ = 0;
  Spares::Block ring_;  // fetched, not yet read: buffered_ bytes from head_ (wrapping)
  std::optional<Opened> opened_;
  size_t head_ = 0;
  uint64_t buffered_ = 0;
  bool stop_ = false, done_ = false;
  std::exception_ptr error_;
};

class S3Store : public BlobStore {
 public:
  ~S3Store() override {
    {
      std::lock_guard lk(sweep_mu_);
      sweep_stop_ = true;
    }
    sweep_cv_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();  // the sweeps queued still run
  }
  explicit S3Store(const S3StoreOptions& o) : o_(o), c_(o.client) {
    if (!o_.prefix.empty() && o_.prefix.back() != '/') o_.prefix += '/';
  }

  void check_bucket() {
    Request r;
    r.method = "HEAD";
    r.ok_statuses = {404, 403, 301};
    auto resp = c_.send(r);
    if (resp.status == 404)
      throw std::runtime_error("storage.s3.bucket: the bucket \"" + o_.client.bucket + "\" does not exist at " +
                               o_.client.endpoint);
    if (resp.status == 403)
      throw std::runtime_error("storage.s3: access to bucket \"" + o_.client.bucket + "\" at " + o_.client.endpoint +
                               " was refused: check access_key and secret_key");
    if (resp.status == 301)
      throw std::runtime_error("storage.s3: the bucket \"" + o_.client.bucket + "\" is in another region than " +
                               o_.client.region);
  }
  // Returns "" when set, else why not (the store may not support it).
  std::string set_lifecycle() {
    if (o_.abort_incomplete_uploads_days <= 0) return "";
    std::string body = "<LifecycleConfiguration><Rule><ID>wharf-abort-incomplete-uploads</ID><Filter><Prefix>" +
                       o_.prefix +
                       "uploads/</Prefix></Filter><Status>Enabled</Status>"
                       "<AbortIncompleteMultipartUpload><DaysAfterInitiation>" +
                       std::to_string(o_.abort_incomplete_uploads_days) +
                       "</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>";
    Request r;
    r.method = "PUT";
    r.query = {{"lifecycle", ""}};
    r.body = body;
    r.headers = {{"Content-MD5", md5_base64(body)}};
    try {
      c_.send(r);
      return "";
    } catch (const S3Error& e) {
      return e.what();
    }
  }

  std::optional<uint64_t> stat(const core::Digest& d) override {
    auto h = head(blob_key(d));
    if (!h) return std::nullopt;
    return std::stoull(h->header("content-length"));
  }
  std::optional<std::string> stamp(const core::Digest& d) override {
    auto h = head(blob_key(d));
    if (!h) return std::nullopt;
    return "s3:" + h->header("etag") + ":" + h->header("x-amz-meta-wharf-stamp") + ":" + h->header("last-modified");
  }
  std::unique_ptr<BlobReader> open(const core::Digest& d, uint64_t offset) override {
    auto r = std::make_unique<S3Reader>(c_, blob_key(d), offset, o_.read_chunk);
    switch (r->wait_opened()) {
      case S3Reader::Opened::Ok: return r;
      case S3Reader::Opened::Missing: return nullptr;
      case S3Reader::Opened::PastEnd: break;  // an empty blob, or an offset at or beyond the end
    }
    auto h = head(blob_key(d));
    if (!h) return nullptr;
    uint64_t size = std::stoull(h->header("content-length"));
    if (offset > size) throw std::out_of_range("s3: offset beyond the blob");
    return std::make_unique<S3Reader>(c_, blob_key(d), size);
  }
  void put(const core::Digest& d, std::string_view bytes) override {
    Request r;
    r.method = "PUT";
    r.key = blob_key(d);
    r.body = bytes;
    r.headers = {{"x-amz-meta-wharf-stamp", random_stamp()}};
    c_.send(r);
  }
  void remove(const core::Digest& d) override { del(blob_key(d)); }
  void for_each_blob(const std::function<void(const BlobInfo&)>& fn) override {
    list(o_.prefix + "blobs/", [&](const std::string& key, uint64_t size, int64_t mtime) {
      // blobs/<algo>/<hex>
      auto rest = key.substr(o_.prefix.size() + 6);
      auto slash = rest.find('/');
      if (slash == std::string::npos) return;
      auto d = core::Digest::parse(rest.substr(0, slash) + ":" + rest.substr(slash + 1));
      if (d) fn({*d, size, mtime});
    });
  }
  std::optional<std::string> redirect_url(const core::Digest& d) override {
    if (o_.redirect != "presigned") return std::nullopt;
    return c_.presign_get(blob_key(d), o_.presign_ttl_seconds);
  }
  // A chunk below the part size is kept as the upload's tail object, read
  // back and written again by the next append: clients that send whole
  // parts avoid that.
  Capabilities capabilities() const override { return {false, o_.part_size}; }

  std::string create_upload(const std::string& id) override {
    check_id(id);
    Request r;
    r.method = "PUT";
    r.key = upload_key(id, "info");
    c_.send(r);
    return State{}.str();
  }
  std::optional<uint64_t> upload_size(const std::string& id, std::string_view state) override {
    check_id(id);
    if (!head(upload_key(id, "info"))) return std::nullopt;
    return State::parse(state).size;
  }
  std::unique_ptr<UploadWriter> append_upload(const std::string& id, std::string_view state) override;
  std::unique_ptr<BlobReader> read_upload(const std::string&, uint64_t) override {
    throw std::logic_error("s3: an upload cannot be read before it is committed (capabilities().read_staged is false)");
  }
  void commit_upload(const std::string& id, std::string_view state, const core::Digest& d) override {
    check_id(id);
    State st = State::parse(state);
    std::string key = blob_key(d);
    if (st.upload_id.empty()) {
      if (st.tail_size > 0) {
        copy_object(upload_key(id, tail_name(st.tail)), key);
      } else {
        Request r;
        r.method = "PUT";
        r.key = key;
        r.headers = {{"x-amz-meta-wharf-stamp", random_stamp()}};
        c_.send(r);
      }
    } else {
      std::string data = upload_key(id, "data");
      if (st.tail_size > 0) {
        int n = static_cast<int>(st.parts.size()) + 1;
        st.parts.push_back(
            {n, copy_part(upload_key(id, tail_name(st.tail)), data, st.upload_id, n, 0, 0), st.tail_size});
      }
      complete(data, st.upload_id, st.parts, st.size);
      if (st.size <= kMaxCopy) {
        copy_object(data, key);
      } else {
        copy_multipart(data, key, st.size);
      }
      del(data);
    }
    // What the state names goes now, the marker last; the listing that also
    // finds what a crashed writer left behind (an older tail, a multipart
    // upload whose state was never stored) runs after the request.
    if (st.tail_size > 0) del(upload_key(id, tail_name(st.tail)));
    if (st.tail > 0) del(upload_key(id, tail_name(st.tail - 1)));  // the one before (its append left it: see S3Writer::close)
    del(upload_key(id, "info"));
    sweep_later(id);
  }
  void delete_upload(const std::string& id, std::string_view state) override {
    check_id(id);
    (void)state;  // everything under the upload's prefix goes, whatever the state names
    clear_upload(id);
  }
  void probe() override {
    std::string key = o_.prefix + "probe/" + random_stamp();
    Request put;
    put.method = "PUT";
    put.key = key;
    put.body = "probe";
    c_.send(put);
    Request get;
    get.key = key;
    auto r = c_.send(get);
    del(key);
    if (r.body != "probe") throw std::runtime_error("s3: the probe object read back differently");
  }

  // --- used by the writer
  const Client& client() const { return c_; }
  std::string upload_key(const std::string& id, const std::string& name) const {
    return o_.prefix + "uploads/" + id + "/" + name;
  }
  static std::string tail_name(int n) { return "tail-" + std::to_string(n); }
  uint64_t part_size(size_t parts_so_far) const { return o_.part_size << std::min<size_t>(parts_so_far / 1000, 8); }
  std::string start_multipart(const std::string& key) {
    Request r;
    r.method = "POST";
    r.key = key;
    r.query = {{"uploads", ""}};
    auto resp = c_.send(r);
    pugi::xml_document doc;
    doc.load_buffer(resp.body.data(), resp.body.size());
    std::string id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
    if (id.empty()) throw std::runtime_error("s3: CreateMultipartUpload gave no UploadId");
    return id;
  }
  std::string upload_part(const std::string& key, const std::string& upload_id, int n, std::string_view bytes) {
    Request r;
    r.method = "PUT";
    r.key = key;
    r.query = {{"partNumber", std::to_string(n)}, {"uploadId", upload_id}};
    r.body = bytes;
    auto etag = c_.send(r).header("etag");
    if (etag.empty()) throw std::runtime_error("s3: UploadPart gave no ETag");
    core::crash_point("s3-part-uploaded");  // tests: WHARF_PAUSE_AT slows pushes to kill a replica mid-push
    return etag;
  }
  void del(const std::string& key) {
    Request r;
    r.method = "DELETE";
    r.key = key;
    r.ok_statuses = {404};
    c_.send(r);
  }

 private:
  std::string blob_key(const core::Digest& d) const {
    return o_.prefix + "blobs/" + std::string(d.algorithm_name()) + "/" + d.hex();
  }
  std::optional<s3::Response> head(const std::string& key) {
    Request r;
    r.method = "HEAD";
    r.key = key;
    r.ok_statuses = {404};
    auto resp = c_.send(r);
    if (resp.status == 404) return std::nullopt;
    return resp;
  }
  std::string copy_source(const std::string& key) const {
    return "/" + o_.client.bucket + "/" + s3::uri_encode(key, true);
  }
  void copy_object(const std::string& from, const std::string& to) {
    Request r;
    r.method = "PUT";
    r.key = to;
    r.headers = {{"x-amz-copy-source", copy_source(from)},
                 {"x-amz-metadata-directive", "REPLACE"},
                 {"x-amz-meta-wharf-stamp", random_stamp()}};
    auto resp = c_.send(r);
    // A copy can fail after its 200 has begun: the error is in the body.
    if (!s3::Client::error_code(resp.body).empty())
      throw S3Error("s3: copy to " + to + " failed: " + resp.body, 500, s3::Client::error_code(resp.body));
  }
  // UploadPartCopy of [first, last] of `from` (the whole object when last == 0).
  std::string copy_part(const std::string& from, const std::string& to, const std::string& upload_id, int n,
                        uint64_t first, uint64_t last) {
    Request r;
    r.method = "PUT";
    r.key = to;
    r.query = {{"partNumber", std::to_string(n)}, {"uploadId", upload_id}};
    r.headers = {{"x-amz-copy-source", copy_source(from)}};
    if (last)
      r.headers.push_back({"x-amz-copy-source-range", "bytes=" + std::to_string(first) + "-" + std::to_string(last)});
    auto resp = c_.send(r);
    pugi::xml_document doc;
    doc.load_buffer(resp.body.data(), resp.body.size());
    std::string etag = doc.child("CopyPartResult").child_value("ETag");
    if (etag.empty()) throw S3Error("s3: UploadPartCopy to " + to + " failed: " + resp.body, 500, "");
    return etag;
  }
  void complete(const std::string& key, const std::string& upload_id, const std::vector<Part>& parts, uint64_t size) {
    std::string body = "<CompleteMultipartUpload>";
    for (const auto& p : parts)
      body += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>" + p.etag + "</ETag></Part>";
    body += "</CompleteMultipartUpload>";
    Request r;
    r.method = "POST";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    r.body = body;
    try {
      auto resp = c_.send(r);
      auto code = s3::Client::error_code(resp.body);
      if (!code.empty()) throw S3Error("s3: CompleteMultipartUpload of " + key + ": " + code, 500, code);
    } catch (const S3Error& e) {
      // A retried completion whose first attempt went through: the object
      // is there with every byte.
      if (e.code != "NoSuchUpload") throw;
      auto h = head(key);
      if (!h || std::stoull(h->header("content-length")) != size) throw;
    }
  }
  void copy_multipart(const std::string& from, const std::string& to, uint64_t size) {
    std::string id = start_multipart(to);
    std::vector<Part> parts;
    try {
      for (uint64_t off = 0; off < size; off += kCopyPart) {
        int n = static_cast<int>(parts.size()) + 1;
        uint64_t last = std::min(size, off + kCopyPart) - 1;
        parts.push_back({n, copy_part(from, to, id, n, off, last), last - off + 1});
      }
      complete(to, id, parts, size);
    } catch (...) {
      abort(to, id);
      throw;
    }
  }
  void abort(const std::string& key, const std::string& upload_id) {
    Request r;
    r.method = "DELETE";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    r.ok_statuses = {404};
    try {
      c_.send(r);
    } catch (...) {
    }
  }
  // clear_upload(id) on the sweeper thread (started on first use).
  void sweep_later(const std::string& id) {
    std::lock_guard lk(sweep_mu_);
    if (!sweeper_.joinable()) sweeper_ = std::thread([this] { sweep_loop(); });
    sweep_q_.push_back(id);
    sweep_cv_.notify_all();
  }
  void sweep_loop() {
    for (;;) {
      std::string id;
      {
        std::unique_lock lk(sweep_mu_);
        sweep_cv_.wait(lk, [&] { return sweep_stop_ || !sweep_q_.empty(); });
        if (sweep_q_.empty()) return;
        id = std::move(sweep_q_.front());
        sweep_q_.pop_front();
      }
      try {
        clear_upload(id);
      } catch (const std::exception&) {
        // Left for the bucket's lifecycle rule (multipart uploads) and the
        // next expiry; the blob itself is committed.
      }
    }
  }
  // Aborts every multipart upload and deletes every object under the upload's
  // prefix (a request that failed half-way may have left some no state names).
  void clear_upload(const std::string& id) {
    std::string prefix = upload_key(id, "");
    for (;;) {
      Request r;
      r.query = {{"uploads", ""}, {"prefix", prefix}};
      auto resp = c_.send(r);
      pugi::xml_document doc;
      doc.load_buffer(resp.body.data(), resp.body.size());
      int n = 0;
      for (auto u : doc.child("ListMultipartUploadsResult").children("Upload")) {
        abort(u.child_value("Key"), u.child_value("UploadId"));
        ++n;
      }
      if (n == 0 || std::string(doc.child("ListMultipartUploadsResult").child_value("IsTruncated")) != "true") break;
    }
    std::vector<std::string> keys;
    list(prefix, [&](const std::string& key, uint64_t, int64_t) { keys.push_back(key); });
    // The marker last: while it is there, the upload is still listed as existing.
    std::stable_partition(keys.begin(), keys.end(), [&](const std::string& k) { return k != prefix + "info"; });
    for (const auto& k : keys) del(k);
    del(prefix + "info");
  }
  void list(const std::string& prefix, const std::function<void(const std::string&, uint64_t, int64_t)>& fn) {
    std::string token;
    for (;;) {
      Request r;
      r.query = {{"list-type", "2"}, {"prefix", prefix}};
      if (!token.empty()) r.query.push_back({"continuation-token", token});
      auto resp = c_.send(r);
      pugi::xml_document doc;
      doc.load_buffer(resp.body.data(), resp.body.size());
      auto res = doc.child("ListBucketResult");
      for (auto c : res.children("Contents")) {
        std::tm tm{};
        std::string lm = c.child_value("LastModified");  // 2026-12-04T23:59:59.000Z
        strptime(lm.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
        fn(c.child_value("Key"), std::stoull(c.child_value("Size")), static_cast<int64_t>(timegm(&tm)));
      }
      token = res.child_value("NextContinuationToken");
      if (std::string(res.child_value("IsTruncated")) != "true" || token.empty()) break;
    }
  }
  static std::string md5_base64(const std::string& s);

  S3StoreOptions o_;
  Client c_;
  // The sweeper: state below is protected by sweep_mu_.
  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  std::deque<std::string> sweep_q_;
  bool sweep_stop_ = false;
  std::thread sweeper_;
};

// Appends to an upload: bytes gather in a part-sized block (from Spares) that
// starts with the upload's tail; each full part goes out as an UploadPart on
// a thread of its own while the next one gathers, up to kInFlight at once (on
// RGW two 16 MiB parts side by side take about as long as one), so a writer
// holds at most kInFlight blocks. close() waits for them and stores what is
// left as the next tail object. The state handed out names only bytes the
// store has durably.
class S3Writer : public UploadWriter {
 public:
  S3Writer(S3Store& s, std::string id, State st) : s_(s), id_(std::move(id)), st_(std::move(st)) {
    size_t part = static_cast<size_t>(s_.part_size(st_.parts.size()));
    part_ = Spares::global().take(part);
    if (st_.tail_size > 0) {
      Request r;
      r.key = s_.upload_key(id_, S3Store::tail_name(st_.tail));
      std::string tail = s_.client().send(r).body;
      if (tail.size() != st_.tail_size) throw std::runtime_error("s3: the upload's tail object has another size");
      if (tail.size() < part) {
        std::memcpy(part_.p.get(), tail.data(), tail.size());
        fill_ = tail.size();
      } else {  // not below a part (part_size was lowered since it was written): sent as parts, the rest a new tail
        write(tail.data(), tail.size());
      }
    }
  }
  ~S3Writer() override {
    for (auto& x : inflight_) {
      try {
        Spares::global().give(x.done.get().second);
      } catch (...) {  // failed: its block went with it (the request fails anyway)
      }
    }
    Spares::global().give(std::move(part_));
  }
  // Gathers the next part in part_ and sends it once it is full.
  void write(const char* p, size_t n) override {
    if (n) dirty_ = true;
    while (n) {
      size_t part = static_cast<size_t>(s_.part_size(parts_started()));
      if (!part_.p) part_ = next_block(part);
      if (part_.cap < part) {  // parts grow: a larger block, with what is gathered
        auto bigger = Spares::global().take(part);
        std::memcpy(bigger.p.get(), part_.p.get(), fill_);
        Spares::global().give(std::exchange(part_, std::move(bigger)));
      }
      if (fill_ >= part) throw std::logic_error("s3: a part's block holds more than a part");  // (cannot happen)
      size_t m = std::min(n, part - fill_);
      std::memcpy(part_.p.get() + fill_, p, m);
      fill_ += m;
      p += m;
      n -= m;
      if (fill_ == part) send_part();
    }
  }
  void close() override {
    while (!inflight_.empty()) Spares::global().give(finish_oldest());
    if (!dirty_) return;  // nothing new: the state stays
    int old = st_.tail;
    if (fill_) {
      Request r;
      r.method = "PUT";
      r.key = s_.upload_key(id_, S3Store::tail_name(old + 1));
      r.body = std::string_view(part_.p.get(), fill_);
      s_.client().send(r);
      st_.tail = old + 1;
    }
    st_.tail_size = fill_;
    // The tail before the one the given state named can never be named
    // again (that state superseded it): remove it.
    if (old > 0) s_.del(s_.upload_key(id_, S3Store::tail_name(old - 1)));
    dirty_ = false;
  }
  std::string state() const override {
    State st = st_;
    st.size = 0;
    for (const auto& p : st.parts) st.size += p.size;
    st.size += st.tail_size;
    return st.str();
  }

 private:
  // Parts are numbered in the order they are sent; the state records one
  // only once its UploadPart succeeded, and in that order.
  size_t parts_started() const { return st_.parts.size() + inflight_.size(); }
  // Sends part_ (fill_ bytes) on a thread of its own.
  void send_part() {
    if (st_.upload_id.empty()) st_.upload_id = s_.start_multipart(s_.upload_key(id_, "data"));
    int n = static_cast<int>(parts_started()) + 1;
    inflight_.push_back({n, fill_,
                         std::async(std::launch::async, [&s = s_, key = s_.upload_key(id_, "data"), up = st_.upload_id,
                                                         n, size = fill_, b = std::move(part_)]() mutable {
                           auto etag = s.upload_part(key, up, n, {b.p.get(), size});
                           return std::make_pair(std::move(etag), std::move(b));
                         })});
    part_ = {};
    fill_ = 0;
  }
  // Waits for the oldest part in flight, records it (its failure is thrown)
  // and hands back its block.
  Spares::Block finish_oldest() {
    InFlight x = std::move(inflight_.front());
    inflight_.pop_front();
    auto [etag, block] = x.done.get();
    st_.parts.push_back({x.number, std::move(etag), x.size});
    return std::move(block);
  }
  // A block for the next part: the oldest one in flight's once it is done
  // when kInFlight are, so a writer holds at most kInFlight blocks.
  Spares::Block next_block(size_t size) {
    if (inflight_.size() >= kInFlight) {
      auto b = finish_oldest();
      if (b.cap >= size) return b;
      Spares::global().give(std::move(b));
    }
    return Spares::global().take(size);
  }
  static constexpr size_t kInFlight = 2;
  struct InFlight {
    int number;
    uint64_t size;
    std::future<std::pair<std::string, Spares::Block>> done;  // the part's ETag, and its block back
  };
  S3Store& s_;
  std::string id_;
  State st_;
  Spares::Block part_;  // the part being gathered (none until needed): fill_ bytes
  size_t fill_ = 0;
  std::deque<InFlight> inflight_;  // oldest first
  bool dirty_ = false;
};

std::unique_ptr<UploadWriter> S3Store::append_upload(const std::string& id, std::string_view state) {
  check_id(id);
  return std::make_unique<S3Writer>(*this, id, State::parse(state));
}

}  // namespace

}  // namespace wharf::storage

#include <openssl/evp.h>

namespace wharf::storage {
namespace {
std::string S3Store::md5_base64(const std::string& s) {
  unsigned char md[16];
  EVP_Digest(s.data(), s.size(), md, nullptr, EVP_md5(), nullptr);
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, md, 16);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}
}  // namespace

std::unique_ptr<BlobStore> make_s3_blob_store(const S3StoreOptions& o) {
  if (o.client.bucket.empty()) throw std::runtime_error("storage.s3.bucket is not set");
  if (o.client.endpoint.empty()) throw std::runtime_error("storage.s3.endpoint is not set");
  if (o.part_size < (5ull << 20))
    throw std::runtime_error("storage.s3.part_size must be at least 5 MiB (S3's minimum part)");
  auto s = std::make_unique<S3Store>(o);
  s->check_bucket();
  s->set_lifecycle();  // a store without lifecycle rules: the aborts on cancel and expiry remain
  return s;
}

}  // namespace wharf::storage
