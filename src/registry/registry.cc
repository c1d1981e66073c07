#include "core/clock.h"
#include "registry/registry.h"

#include "http/error_response.h"

#include <openssl/rand.h>

#include <charconv>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unordered_map>
#include <unordered_set>

#include "core/digest.h"
#include "core/error.h"
#include "core/metrics.h"
#include "core/reference.h"
#include "image/manifest.h"
#include "storage/async_writer.h"

namespace wharf::registry {

namespace asio = boost::asio;
using core::Digest;
using core::Error;
using core::ErrorCode;
using http::Exchange;
using http::Request;
using http::Response;
using nlohmann::json;

namespace {

constexpr size_t kIoBuffer = 1 << 20;

int64_t now_s() { return core::unix_seconds(); }

std::string new_upload_id() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += kHex[b[i] >> 4];
    s += kHex[b[i] & 15];
  }
  return s;
}

bool valid_upload_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
  return true;
}

// A parsed /v2/ path.
struct Route {
  enum Kind { Base, Catalog, Manifest, Blob, UploadStart, Upload, Tags, Referrers, Unknown } kind = Unknown;
  std::string name;
  std::string ref;  // tag or digest, upload id
};

Route parse_route(std::string_view path) {
  Route r;
  if (path == "/v2" || path == "/v2/") {
    r.kind = Route::Base;
    return r;
  }
  if (!path.starts_with("/v2/")) return r;
  std::string_view rest = path.substr(4);
  if (rest == "_catalog") {
    r.kind = Route::Catalog;
    return r;
  }
  struct Marker {
    std::string_view text;
    Route::Kind kind;
  };
  // Longest marker first where two end at the same place.
  static constexpr Marker kMarkers[] = {{"/blobs/uploads/", Route::Upload},
                                        {"/manifests/", Route::Manifest},
                                        {"/blobs/", Route::Blob},
                                        {"/referrers/", Route::Referrers}};
  size_t best = std::string_view::npos;
  const Marker* which = nullptr;
  for (auto& m : kMarkers) {
    size_t p = rest.rfind(m.text);
    if (p != std::string_view::npos && p != 0 && (best == std::string_view::npos || p > best)) {
      best = p;
      which = &m;
    }
  }
  if (rest.ends_with("/tags/list")) {
    size_t p = rest.size() - 10;
    if (p > 0 && (best == std::string_view::npos || p >= best)) {
      r.kind = Route::Tags;
      r.name = rest.substr(0, p);
      return r;
    }
  }
  if (rest.ends_with("/blobs/uploads")) {  // POST without trailing slash
    r.kind = Route::UploadStart;
    r.name = rest.substr(0, rest.size() - 14);
    return r;
  }
  if (!which) return r;
  r.name = rest.substr(0, best);
  r.ref = rest.substr(best + which->text.size());
  r.kind = which->kind;
  if (r.kind == Route::Upload && r.ref.empty()) r.kind = Route::UploadStart;
  if (r.kind != Route::UploadStart && r.ref.empty()) r.kind = Route::Unknown;
  if (r.ref.find('/') != std::string::npos) r.kind = Route::Unknown;
  return r;
}

Digest parse_digest_or_throw(std::string_view s) {
  if (auto d = Digest::parse(s)) return *d;
  if (Digest::grammar_ok(s) && !s.starts_with("sha256:") && !s.starts_with("sha512:"))
    throw Error(ErrorCode::DigestInvalid, "digest algorithm is not supported (use sha256 or sha512)", std::string(s));
  throw Error(ErrorCode::DigestInvalid, "invalid digest", std::string(s));
}

// "0-1023" or "bytes 0-1023/*" -> (0, 1023)
bool parse_content_range(std::string_view v, uint64_t& a, uint64_t& b) {
  if (v.starts_with("bytes ")) v.remove_prefix(6);
  if (v.starts_with("bytes=")) v.remove_prefix(6);
  auto slash = v.find('/');
  v = v.substr(0, slash);
  auto dash = v.find('-');
  if (dash == std::string_view::npos) return false;
  auto x = v.substr(0, dash), y = v.substr(dash + 1);
  auto r1 = std::from_chars(x.data(), x.data() + x.size(), a);
  auto r2 = std::from_chars(y.data(), y.data() + y.size(), b);
  return r1.ec == std::errc() && r1.ptr == x.data() + x.size() && r2.ec == std::errc() &&
         r2.ptr == y.data() + y.size() && b >= a;
}

std::string range_header(uint64_t size) { return "0-" + std::to_string(size ? size - 1 : 0); }

Response json_response(int status, const json& body, std::string_view type = "application/json") {
  Response r;
  r.status = status;
  r.headers.add("Content-Type", std::string(type));
  r.body = body.dump();
  return r;
}

}  // namespace

struct Registry::Impl {
  Options opts;
  storage::BlobStore& blobs;
  meta::MetadataStore& meta;

  // Uploads a request of this process is writing: one writer per session
  // (a second concurrent request gets BLOB_UPLOAD_INVALID). Between requests
  // a session lives in the metadata store alone (its size, driver state and
  // digest state), so any process continues it.
  std::mutex mu;
  std::unordered_set<std::string> busy;

  Impl(Options o, storage::BlobStore& b, meta::MetadataStore& m) : opts(std::move(o)), blobs(b), meta(m) {}

  // Exclusive use of one upload session for the duration of a request: in
  // this process (busy), and, once hold() took it, among the processes
  // sharing the metadata store (MetadataStore::try_hold: a session advisory
  // lock on PostgreSQL, gone with a process that dies). A second writer, here
  // or on another replica, gets BLOB_UPLOAD_INVALID.
  class Claim {
   public:
    Claim(Impl& im, std::string id) : im_(im), id_(std::move(id)) {
      std::lock_guard lk(im_.mu);
      if (!im_.busy.insert(id_).second)
        throw Error(ErrorCode::BlobUploadInvalid, "another request is writing to this upload session");
    }
    ~Claim() {
      if (hold_ && im_.opts.offload)  // a release left on an error path: not on this (I/O) thread
        im_.opts.offload->post([h = std::shared_ptr<meta::MetadataStore::Hold>(std::move(hold_))] {});
      std::lock_guard lk(im_.mu);
      im_.busy.erase(id_);
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    // Takes the hold among processes.
    asio::awaitable<void> hold() {
      auto h = co_await im_.backend([&] { return im_.meta.try_hold("upload:" + id_); });
      if (!h) throw Error(ErrorCode::BlobUploadInvalid, "another request is writing to this upload session");
      hold_ = std::move(h);
    }
    // Before writing what the claim protects (the session's state): throws
    // when the hold was lost meanwhile (the database connection holding it
    // broke, so another process may have taken it).
    bool lost() { return hold_ && hold_->lost(); }
    void check() {
      if (lost())
        throw Error(ErrorCode::Unavailable, "lost the lock on this upload session: retry from its status",
                    id_);
    }
    // Releases the hold before the response goes out (the client's next
    // request for the session may come to another replica at once).
    asio::awaitable<void> release() {
      if (!hold_) co_return;
      co_await im_.backend([&] { hold_.reset(); });
    }

   private:
    Impl& im_;
    std::string id_;
    std::unique_ptr<meta::MetadataStore::Hold> hold_;
  };

  // An upload being written by this request: the session and its hash (of
  // the algorithm the session announced: sha256 unless its POST said
  // otherwise with `digest-algorithm` or a monolithic `digest`).
  struct Writing {
    meta::UploadRecord session;
    core::Hasher hash{core::DigestAlgorithm::Sha256};
    Claim* claim = nullptr;  // held across processes (Claim::hold), when it was taken
  };

  // Runs a blocking backend call off the I/O thread when the registry was
  // given an Offload (remote backends), else inline.
  template <class F>
  asio::awaitable<std::invoke_result_t<F&>> backend(F f) {
    co_return co_await http::run_on(opts.offload, std::move(f));
  }

  // ---- helpers -------------------------------------------------------------

  static void check_name(const std::string& name) {
    if (!core::valid_repository_name(name))
      throw Error(ErrorCode::NameInvalid, "invalid repository name", name);
  }

  std::string location(const Request& req, const std::string& path) const {
    return http::base_url(req, opts.external_url) + path;
  }

  asio::awaitable<void> send_error(Exchange& ex, const Error& e, Response& r) {
    Response er = http::error_response(e);
    for (const auto& [k, v] : r.headers.items())  // what the caller set (Content-Range)
      if (k != "Content-Type") er.headers.add(k, v);
    r = std::move(er);
    co_await ex.send(r);
  }

  // The session's digest state: restored from what it saved, or (a session
  // stored by an older version, which saved none) recomputed from the staged
  // bytes where the driver can read them.
  core::Hasher digest_state(const meta::UploadRecord& u) {
    if (!u.digest_state.empty()) {
      auto h = core::Hasher::restore(u.digest_state);
      if (!h) throw std::runtime_error("upload session " + u.id + " has an unreadable digest state");
      return std::move(*h);
    }
    core::Hasher h(core::DigestAlgorithm::Sha256);
    if (u.size == 0) return h;
    if (!blobs.capabilities().read_staged)
      throw Error(ErrorCode::BlobUploadInvalid, "this upload session cannot be continued: start the upload again");
    hash_staged(u, h);
    return h;
  }

  // Hashes the session's staged bytes. REQUIRES: blobs.capabilities().read_staged.
  void hash_staged(const meta::UploadRecord& u, core::Hasher& h) {
    auto rd = blobs.read_upload(u.id, 0);
    if (!rd) throw Error(ErrorCode::BlobUploadUnknown, "upload session has no data");
    std::vector<char> buf(kIoBuffer);
    uint64_t left = u.size;
    while (left) {
      size_t n = rd->read(buf.data(), std::min<uint64_t>(buf.size(), left));
      if (!n) throw std::runtime_error("staged upload " + u.id + " is shorter than its session says");
      h.update(buf.data(), n);
      left -= n;
    }
  }

  // Appends the request body to the upload, hashing as it goes, and updates
  // `w.session`'s size and driver state. The socket is read on this thread
  // while the previous chunks are hashed and written on the writer's two
  // threads. When the client goes away mid-body, what it sent is kept: the
  // session is saved with it before the error goes on, so a client that asks
  // for the upload's status continues from there. A malformed body keeps nothing.
  asio::awaitable<void> append_body(Exchange& ex, Writing& w) {
    auto out = co_await backend([&] { return blobs.append_upload(w.session.id, w.session.driver_state); });
    out->bypass_cache();  // nobody reads a push's bytes back soon
    std::exception_ptr read_error;
    const uint64_t started = w.session.size;
    uint64_t offset = started;
    {
      storage::AsyncWriter aw(*out, w.hash);
      for (bool more = true; more;) {
        storage::Buffer buf = aw.take();
        size_t n = 0;
        try {
          // Fill the chunk before handing it over: fewer, larger writes.
          while (n < buf.size()) {
            size_t got = co_await ex.read_body({buf.data() + n, buf.size() - n});
            if (!got) {
              more = false;
              break;
            }
            n += got;
          }
        } catch (const http::MalformedBody&) {
          throw;  // bad input changes nothing: the session stays as stored
        } catch (...) {
          read_error = std::current_exception();
          more = false;
        }
        if (!n) break;
        if (opts.upload_observer) opts.upload_observer->appended(w.session.id, offset, buf.data(), n);
        offset += n;
        // A full queue waits for the store: off the I/O thread when there is a pool.
        co_await backend([&] { aw.push(std::move(buf), n); });
      }
      co_await backend([&] { aw.finish(); });  // a write error leaves the session as it was stored
    }
    co_await backend([&] {
      if (w.claim) w.claim->check();  // before the tail is stored: another writer may hold the session
      out->close();
    });
    w.session.size = offset;
    w.session.driver_state = out->state();
    if (read_error) {
      if (offset > started) {
        w.session.digest_state = w.hash.save();
        w.session.updated = now_s();
        co_await backend([&] {
          if (!w.claim || !w.claim->lost()) meta.save_upload_progress(w.session);
        });
      }
      std::rethrow_exception(read_error);
    }
  }

  // Verifies `want` against the staged bytes and commits the blob into `name`.
  // On mismatch the session and its bytes are removed.
  void finish_upload(const std::string& name, Writing& w, const Digest& want) {
    const auto& u = w.session;
    if (want.algorithm() != w.hash.algorithm() && !blobs.capabilities().read_staged) {
      finish_upload_read_back(name, w, want);
      return;
    }
    Digest got = [&] {
      if (want.algorithm() == w.hash.algorithm()) return w.hash.finish();
      // Another algorithm than the session hashed: the staged bytes read back.
      core::Hasher h(want.algorithm());
      hash_staged(u, h);
      return h.finish();
    }();
    if (got != want) {
      if (opts.upload_observer) opts.upload_observer->dropped(u.id);
      blobs.delete_upload(u.id, u.driver_state);
      meta.delete_upload(u.id);
      throw Error(ErrorCode::DigestInvalid, "the uploaded content does not match the digest",
                  "expected " + want.str() + ", content hashes to " + got.str());
    }
    meta.claim_blob_write(want.str());
    blobs.commit_upload(u.id, u.driver_state, want);
    meta.complete_upload(u.id, name, want.str(), u.size);
    if (opts.upload_observer) opts.upload_observer->committed(u.id, want.str(), u.size);
    core::Metrics::global().add("wharf_uploads_completed_total");
    core::Metrics::global().add("wharf_upload_bytes_total", u.size);
  }

  // The final digest uses another algorithm than the session hashed (a
  // client that announced none), on a driver that cannot read an upload
  // before its commit: the bytes are committed under the digest the session
  // computed, read back and hashed with `want`'s algorithm, and stored again
  // under `want` when it matches (streamed through wharf once more: the rare
  // case; a client that sends `digest-algorithm` avoids it). The first blob
  // is removed again unless something uses it.
  void finish_upload_read_back(const std::string& name, Writing& w, const Digest& want) {
    const auto& u = w.session;
    Digest first = w.hash.finish();
    meta.claim_blob_write(first.str());
    blobs.commit_upload(u.id, u.driver_state, first);
    meta.delete_upload(u.id);
    if (opts.upload_observer) opts.upload_observer->dropped(u.id);
    auto drop_first = [&] {
      try {
        meta.remove_blob_if_unused(first.str(), core::unix_seconds() + 1, [&] { blobs.remove(first); });
      } catch (...) {
      }
    };
    core::Hasher h(want.algorithm());
    std::string id = new_upload_id();
    std::string state = blobs.create_upload(id);
    try {
      auto rd = blobs.open(first);
      if (!rd) throw std::runtime_error("blob " + first.str() + " vanished after its commit");
      auto out = blobs.append_upload(id, state);
      std::vector<char> buf(kIoBuffer);
      while (size_t n = rd->read(buf.data(), buf.size())) {
        h.update(buf.data(), n);
        out->write(buf.data(), n);
      }
      out->close();
      state = out->state();
      Digest got = h.finish();
      if (got != want)
        throw Error(ErrorCode::DigestInvalid, "the uploaded content does not match the digest",
                    "expected " + want.str() + ", content hashes to " + got.str());
      meta.claim_blob_write(want.str());
      blobs.commit_upload(id, state, want);
    } catch (...) {
      blobs.delete_upload(id, state);
      drop_first();
      throw;
    }
    meta.link_blob(name, want.str(), u.size);
    drop_first();
    core::Metrics::global().add("wharf_uploads_completed_total");
    core::Metrics::global().add("wharf_upload_bytes_total", u.size);
  }

  Response upload_progress(const Request& req, const std::string& name, const std::string& id, uint64_t size,
                           int status) {
    Response r;
    r.status = status;
    r.headers.add("Location", location(req, "/v2/" + name + "/blobs/uploads/" + id));
    r.headers.add("Range", range_header(size));
    r.headers.add("Docker-Upload-UUID", id);
    if (auto min = blobs.capabilities().chunk_min_length) r.headers.add("OCI-Chunk-Min-Length", std::to_string(min));
    return r;
  }

  Response blob_created(const Request& req, const std::string& name, const Digest& d) {
    Response r;
    r.status = 201;
    r.headers.add("Location", location(req, "/v2/" + name + "/blobs/" + d.str()));
    r.headers.add("Docker-Content-Digest", d.str());
    return r;
  }

  // Checks the upload exists and belongs to `name`.
  meta::UploadRecord get_upload(const std::string& name, const std::string& id) {
    if (!valid_upload_id(id)) throw Error(ErrorCode::BlobUploadUnknown, "upload session unknown", id);
    auto u = meta.get_upload(id);
    if (!u || u->repo != name) throw Error(ErrorCode::BlobUploadUnknown, "upload session unknown", id);
    return *u;
  }

  // ---- handlers ------------------------------------------------------------

  asio::awaitable<void> base(Exchange& ex) {
    ex.route = "base";
    if (ex.request().method != "GET" && ex.request().method != "HEAD")
      throw Error(ErrorCode::Unsupported, "method not allowed");
    auto r = json_response(200, json::object());
    co_await ex.send(r);
  }

  // Parses ?n= and ?last=. n absent: page_size_max.
  size_t page_n(const Request& req) const {
    auto n = req.param("n");
    if (!n) return static_cast<size_t>(opts.limits.page_size_max);
    int64_t v = -1;
    auto r = std::from_chars(n->data(), n->data() + n->size(), v);
    if (r.ec != std::errc() || r.ptr != n->data() + n->size() || v < 0)
      throw Error(ErrorCode::PaginationNumberInvalid, "n must be a non-negative integer", *n);
    return static_cast<size_t>(std::min<int64_t>(v, opts.limits.page_size_max));
  }

  static void add_next_link(Response& r, const std::string& path, const std::vector<std::string>& page, size_t n,
                            bool more) {
    if (!more || page.empty()) return;
    r.headers.add("Link", "<" + path + "?last=" + http::percent_encode(page.back()) + "&n=" + std::to_string(n) +
                              ">; rel=\"next\"");
  }

  asio::awaitable<void> catalog(Exchange& ex) {
    ex.route = "catalog";
    const auto& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    size_t n = page_n(req);
    auto last = req.param("last").value_or("");
    std::vector<std::string> repos;
    bool more = false;
    co_await backend([&] {
      auth::AccessControl::Readable readable;
      if (opts.access) readable = opts.access->reader(req);
      while (n && !more) {  // only the repositories the caller may read, n per page
        auto batch = meta.list_repositories(last, n + 1);
        auto ok = readable ? readable(batch) : std::vector<bool>(batch.size(), true);  // sorted: in one go
        for (size_t i = 0; i < batch.size(); ++i) {
          if (!ok[i]) continue;
          if (repos.size() == n) {
            more = true;
            break;
          }
          repos.push_back(batch[i]);
        }
        if (batch.size() < n + 1) break;
        last = batch.back();
      }
    });
    auto r = json_response(200, json{{"repositories", repos}});
    add_next_link(r, "/v2/_catalog", repos, n, more);
    co_await ex.send(r);
  }

  asio::awaitable<void> tags(Exchange& ex, const std::string& name) {
    ex.route = "tags_list";
    const auto& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    size_t n = page_n(req);
    auto last = req.param("last").value_or("");
    auto tags = co_await backend([&] {
      if (!meta.repository_exists(name))
        throw Error(ErrorCode::NameUnknown, "repository name not known to registry", name);
      return n ? meta.list_tags(name, last, n + 1) : std::vector<std::string>{};
    });
    bool more = tags.size() > n;
    if (more) tags.resize(n);
    auto r = json_response(200, json{{"name", name}, {"tags", tags}});
    add_next_link(r, "/v2/" + name + "/tags/list", tags, n, more);
    co_await ex.send(r);
  }

  // Tag or digest -> manifest digest string.
  std::optional<std::string> resolve(const std::string& name, const std::string& ref, bool& by_digest) {
    by_digest = ref.find(':') != std::string::npos;
    if (by_digest) return parse_digest_or_throw(ref).str();
    if (!core::valid_tag(ref)) throw Error(ErrorCode::TagInvalid, "invalid tag", ref);
    return meta.resolve_tag(name, ref);
  }

  asio::awaitable<void> manifest(Exchange& ex, const std::string& name, const std::string& ref) {
    const auto& m = ex.request().method;
    if (m == "GET" || m == "HEAD") co_return co_await manifest_get(ex, name, ref);
    if (m == "PUT") co_return co_await manifest_put(ex, name, ref);
    if (m == "DELETE") co_return co_await manifest_delete(ex, name, ref);
    throw Error(ErrorCode::Unsupported, "method not allowed");
  }

  asio::awaitable<void> manifest_get(Exchange& ex, const std::string& name, const std::string& ref) {
    ex.route = "manifest_get";
    // A reference that is neither a tag nor a digest names no manifest: 404
    // (the spec's v1.1 conformance tests GET/HEAD ".INVALID_MANIFEST_NAME").
    if (ref.find(':') == std::string::npos && !core::valid_tag(ref))
      throw Error(ErrorCode::ManifestUnknown, "manifest unknown: not a valid tag or digest", ref);
    auto m = co_await backend([&] {
      bool by_digest;
      auto digest = resolve(name, ref, by_digest);
      if (!digest) throw Error(ErrorCode::ManifestUnknown, "manifest unknown", ref);
      auto found = meta.get_manifest(name, *digest);
      if (!found) throw Error(ErrorCode::ManifestUnknown, "manifest unknown", ref);
      return std::move(*found);
    });
    if (!image::accept_allows(ex.request().headers.all("Accept"), m.media_type))
      throw Error(ErrorCode::ManifestUnknown,
                  "the manifest is stored as " + m.media_type + ", which the request's Accept header does not list",
                  ref);
    Response r;
    r.headers.add("Content-Type", m.media_type);
    r.headers.add("Docker-Content-Digest", m.digest);
    r.headers.add("ETag", "\"" + m.digest + "\"");
    r.body = std::move(m.body);
    co_await ex.send(r);
  }

  asio::awaitable<void> manifest_put(Exchange& ex, const std::string& name, const std::string& ref) {
    ex.route = "manifest_put";
    const auto& req = ex.request();
    bool by_digest = ref.find(':') != std::string::npos;
    std::optional<Digest> want;
    if (by_digest)
      want = parse_digest_or_throw(ref);
    else if (!core::valid_tag(ref))
      throw Error(ErrorCode::TagInvalid, "invalid tag", ref);
    // Tags: the reference when it is one, and every `tag` parameter (the
    // spec's main branch: "When pushing a manifest by digest, the registry
    // MAY support the pushing of tags specified by addition of `tag` query
    // parameters"; each accepted one is named in an OCI-Tag header).
    std::vector<std::string> tags;
    if (!by_digest) tags.push_back(ref);
    for (auto& t : req.params("tag")) {
      if (!core::valid_tag(t)) throw Error(ErrorCode::TagInvalid, "invalid tag in the tag parameter", t);
      if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    }
    if (tags.size() > opts.manifests.max_tags_per_push) {
      throw Error(ErrorCode::TooManyTags, "at most " + std::to_string(opts.manifests.max_tags_per_push) + " tags per manifest push");
    }
    const uint64_t limit = opts.limits.max_manifest_bytes;
    if (req.content_length && *req.content_length > limit)
      throw Error(ErrorCode::ManifestTooLarge, "manifest is larger than the limit of " + std::to_string(limit) + " bytes");
    std::string body;
    {
      std::vector<char> buf(64 * 1024);
      while (size_t n = co_await ex.read_body(buf)) {
        if (body.size() + n > limit)
          throw Error(ErrorCode::ManifestTooLarge,
                      "manifest is larger than the limit of " + std::to_string(limit) + " bytes");
        body.append(buf.data(), n);
      }
    }
    Digest got = core::digest_of(want ? want->algorithm() : core::DigestAlgorithm::Sha256, body);
    if (want && got != *want)
      throw Error(ErrorCode::DigestInvalid, "manifest content does not match the digest in the URL",
                  "content hashes to " + got.str());
    auto parsed = image::parse_manifest(body, req.headers.get("Content-Type").value_or(""));
    meta::ManifestRecord rec{got.str(), parsed.media_type, std::move(body), parsed.artifact_type,
                             parsed.subject ? parsed.subject->digest : "", parsed.annotations};
    co_await backend([&] {
      std::vector<std::string> refs;
      // With sparse manifests allowed, what was not pushed is still recorded
      // as referenced: pushed later, it is kept by this manifest.
      for (const auto& b : parsed.blobs) {
        if (b.has_urls) continue;
        if (!opts.manifests.allow_sparse && !meta.linked_blob_size(name, b.digest))
          throw Error(ErrorCode::ManifestBlobUnknown, "blob unknown to registry", b.digest);
        refs.push_back(b.digest);
      }
      for (const auto& c : parsed.children) {
        if (!opts.manifests.allow_sparse && !meta.get_manifest(name, c.digest))
          throw Error(ErrorCode::ManifestBlobUnknown, "manifest references a manifest unknown to this repository",
                      c.digest);
        refs.push_back(c.digest);
      }
      meta.put_manifest(name, rec, refs, tags);
      if (opts.on_manifest_pushed && !parsed.is_index) opts.on_manifest_pushed(name, rec.digest);
      if (opts.on_tag_pushed)  // reads repository settings and squash records
        for (const auto& t : tags) opts.on_tag_pushed(name, t);
    });
    if (opts.access) {
      json audit{{"digest", rec.digest}, {"tag", tags.empty() ? "" : tags.front()}};
      if (tags.size() > 1) audit["tags"] = tags;
      opts.access->audit(req, nullptr, "push", name, audit);
    }
    Response r;
    r.status = 201;
    r.headers.add("Location", location(req, "/v2/" + name + "/manifests/" + rec.digest));
    r.headers.add("Docker-Content-Digest", rec.digest);
    if (!req.params("tag").empty())
      for (const auto& t : tags) r.headers.add("OCI-Tag", t);
    if (parsed.subject) r.headers.add("OCI-Subject", parsed.subject->digest);
    co_await ex.send(r);
  }

  asio::awaitable<void> manifest_delete(Exchange& ex, const std::string& name, const std::string& ref) {
    ex.route = "manifest_delete";
    if (!opts.delete_.enabled) throw Error(ErrorCode::Unsupported, "deletion is disabled on this registry");
    bool found = co_await backend([&] {
      if (ref.find(':') != std::string::npos) {
        std::string digest = parse_digest_or_throw(ref).str();
        bool deleted = meta.delete_manifest(name, digest);
        if (deleted && opts.on_manifest_deleted) opts.on_manifest_deleted(digest);
        return deleted;
      }
      if (!core::valid_tag(ref)) throw Error(ErrorCode::TagInvalid, "invalid tag", ref);
      return meta.delete_tag(name, ref);
    });
    if (!found) throw Error(ErrorCode::ManifestUnknown, "manifest unknown", ref);
    if (opts.access) opts.access->audit(ex.request(), nullptr, "delete", name, json{{"reference", ref}});
    Response r;
    r.status = 202;
    co_await ex.send(r);
  }

  asio::awaitable<void> blob(Exchange& ex, const std::string& name, const std::string& ref) {
    const auto& req = ex.request();
    Digest d = parse_digest_or_throw(ref);
    if (req.method == "DELETE") {
      ex.route = "blob_delete";
      if (!opts.delete_.enabled) throw Error(ErrorCode::Unsupported, "deletion is disabled on this registry");
      bool unlinked = co_await backend([&] { return meta.unlink_blob(name, d.str()); });
      if (!unlinked) throw Error(ErrorCode::BlobUnknown, "blob unknown to registry", d.str());
      if (opts.access) opts.access->audit(req, nullptr, "delete", name, json{{"blob", d.str()}});
      Response r;
      r.status = 202;
      co_return co_await ex.send(r);
    }
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    ex.route = "blob_get";
    auto size = co_await backend([&] { return meta.linked_blob_size(name, d.str()); });
    if (!size) throw Error(ErrorCode::BlobUnknown, "blob unknown to registry", d.str());
    Response r;
    r.headers.add("Docker-Content-Digest", d.str());
    if (req.method == "GET") {
      // An object store that serves the bytes itself: the client follows a
      // presigned URL (GET only; it outlives a revocation by its lifetime).
      auto url = co_await backend([&] { return blobs.redirect_url(d); });
      if (url) {
        r.status = 307;
        r.headers.add("Location", *url);
        r.headers.add("Cache-Control", "no-store");
        co_return co_await ex.send(r);
      }
    }
    r.headers.add("Content-Type", "application/octet-stream");
    r.headers.add("ETag", "\"" + d.str() + "\"");
    r.headers.add("Accept-Ranges", "bytes");
    r.headers.add("Cache-Control", "max-age=31536000");
    http::ByteRange range{0, *size ? *size - 1 : 0};
    uint64_t length = *size;
    if (auto rh = req.headers.get("Range")) {
      switch (http::parse_range(*rh, *size, range)) {
        case http::RangeResult::Unsatisfiable: {
          Response e;
          e.headers.add("Content-Range", "bytes */" + std::to_string(*size));
          Error err(ErrorCode::RangeNotSatisfiable, "requested range not satisfiable", std::string(*rh));
          co_return co_await send_error(ex, err, e);
        }
        case http::RangeResult::Ok:
          r.status = 206;
          length = range.length();
          r.headers.add("Content-Range", "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                                             "/" + std::to_string(*size));
          break;
        case http::RangeResult::None: break;
      }
    }
    if (req.is_head()) {
      r.content_length = length;
      co_return co_await ex.send(r);
    }
    auto rd = co_await backend([&] { return blobs.open(d, r.status == 206 ? range.first : 0); });
    if (!rd) throw Error(ErrorCode::BlobUnknown, "blob content is missing from storage", d.str());
    if (rd->native_fd() >= 0) co_return co_await ex.send_file(r, rd->native_fd(), rd->native_offset(), length);
    r.content_length = length;
    co_await ex.begin(r);
    std::vector<char> buf(kIoBuffer);
    uint64_t left = length;
    while (left) {
      size_t n = co_await backend([&] { return rd->read(buf.data(), std::min<uint64_t>(left, buf.size())); });
      if (!n) throw std::runtime_error("blob ended early");
      co_await ex.write({buf.data(), n});
      left -= n;
    }
    co_await ex.end();
  }

  asio::awaitable<void> upload_start(Exchange& ex, const std::string& name) {
    ex.route = "upload_start";
    const auto& req = ex.request();
    if (req.method != "POST") throw Error(ErrorCode::Unsupported, "method not allowed");
    // Cross-repository mount.
    if (auto mount = req.param("mount")) {
      if (auto d = Digest::parse(*mount)) {
        auto from = req.param("from");
        std::optional<uint64_t> size;
        // The source must be readable by the caller; otherwise upload normally.
        bool mounted = co_await backend([&] {
          auto readable = [&](std::vector<std::string> sorted) {
            return opts.access ? opts.access->reader(req)(sorted) : std::vector<bool>(sorted.size(), true);
          };
          if (from && core::valid_repository_name(*from)) {
            if (readable({*from})[0]) size = meta.linked_blob_size(*from, d->str());
          } else if (!from) {
            // No `from`: mount when the blob is already known to a repository the caller may read.
            auto repos = meta.repositories_with_blob(d->str(), 20);
            std::sort(repos.begin(), repos.end());
            auto ok = readable(repos);
            for (size_t i = 0; i < repos.size(); ++i)
              if (ok[i]) {
                size = meta.linked_blob_size(repos[i], d->str());
                break;
              }
          }
          if (!size || !blobs.stat(*d)) return false;
          meta.link_blob(name, d->str(), *size);
          return true;
        });
        if (mounted) {
          auto r = blob_created(req, name, *d);
          co_return co_await ex.send(r);
        }
      }
      // Not mountable: fall back to a normal upload session below.
    }
    std::optional<Digest> mono;
    if (auto dg = req.param("digest")) mono = parse_digest_or_throw(*dg);
    // The spec's main branch: a POST for a blob hashed with another algorithm
    // than sha256 "SHOULD include the `digest-algorithm` parameter"; one we
    // cannot compute is a 400 now rather than at the final PUT.
    if (auto alg = req.param("digest-algorithm")) {
      auto a = core::parse_digest_algorithm(*alg);
      if (!a) throw Error(ErrorCode::DigestInvalid, "unsupported digest algorithm (supported: sha256, sha512)", *alg);
      if (mono && mono->algorithm() != *a)
        throw Error(ErrorCode::DigestInvalid, "the digest parameter does not use the digest-algorithm parameter's algorithm",
                    mono->str());
    }
    core::DigestAlgorithm algo = core::DigestAlgorithm::Sha256;
    if (mono) algo = mono->algorithm();
    if (auto alg = req.param("digest-algorithm")) algo = *core::parse_digest_algorithm(*alg);
    std::string id = new_upload_id();
    int64_t t = now_s();
    // The digest state of the announced algorithm, saved from the start.
    meta::UploadRecord session{id, name, t, t, 0, "", core::Hasher(algo).save()};
    co_await backend([&] {
      session.driver_state = blobs.create_upload(id);
      // Relaxed: a session lost to a power cut is opened again by the client
      // (its staged file is not fsynced before data arrives either).
      meta.create_upload(session, meta::MetadataStore::Commit::Relaxed);
    });
    if (!mono) {
      auto r = upload_progress(req, name, id, 0, 202);
      co_return co_await ex.send(r);
    }
    // Monolithic upload: the body is the whole blob.
    {
      Claim c(*this, id);
      Writing w{std::move(session), core::Hasher(algo)};
      co_await append_body(ex, w);
      co_await backend([&] { finish_upload(name, w, *mono); });
    }
    auto r = blob_created(req, name, *mono);
    co_await ex.send(r);
  }

  asio::awaitable<void> upload(Exchange& ex, const std::string& name, const std::string& id) {
    const auto& req = ex.request();
    const auto& m = req.method;
    if (m == "GET") {
      ex.route = "upload_status";
      auto size = co_await backend([&] {
        auto found = get_upload(name, id);
        return blobs.upload_size(id, found.driver_state);
      });
      if (!size) throw Error(ErrorCode::BlobUploadUnknown, "upload session unknown", id);
      auto r = upload_progress(req, name, id, *size, 204);
      co_return co_await ex.send(r);
    }
    if (m == "DELETE") {
      ex.route = "upload_delete";
      {
        Claim c(*this, id);
        co_await c.hold();
        co_await backend([&] {
          auto found = get_upload(name, id);
          if (opts.upload_observer) opts.upload_observer->dropped(id);
          blobs.delete_upload(id, found.driver_state);
          meta.delete_upload(id);
        });
        co_await c.release();
      }
      Response r;
      r.status = 204;
      co_return co_await ex.send(r);
    }
    if (m != "PATCH" && m != "PUT") {
      get_upload(name, id);  // an unknown session is that, whatever the method
      throw Error(ErrorCode::Unsupported, "method not allowed");
    }
    ex.route = m == "PATCH" ? "upload_patch" : "upload_put";
    // The claim is released before the response goes out: a client may send
    // its next request for this upload on another connection at once.
    Response r;
    {
      Claim c(*this, id);
      co_await c.hold();
      // Read once the claim is ours: what the last writer stored. (Not in the
      // braced initializer: GCC 12 frees a co_await temporary there twice.)
      meta::UploadRecord stored = co_await backend([&] { return get_upload(name, id); });
      Writing w{std::move(stored)};
      w.claim = &c;
      std::optional<Digest> want;
      if (m == "PUT") {
        auto dg = req.param("digest");
        if (!dg) throw Error(ErrorCode::DigestInvalid, "PUT must carry ?digest= to complete an upload");
        want = parse_digest_or_throw(*dg);
      }
      auto staged = co_await backend([&] { return blobs.upload_size(id, w.session.driver_state); });
      if (!staged) throw Error(ErrorCode::BlobUploadUnknown, "upload session unknown", id);
      w.session.size = *staged;  // the driver's word (a session an older version stored has no size)
      if (auto cr = req.headers.get("Content-Range")) {
        uint64_t a, b;
        bool ok = parse_content_range(*cr, a, b);
        if (ok && req.content_length && *req.content_length != b - a + 1)
          throw Error(ErrorCode::SizeInvalid, "Content-Range " + std::string(*cr) + " does not match Content-Length " +
                                                  std::to_string(*req.content_length));
        if (!ok || a != *staged) {
          r = upload_progress(req, name, id, *staged, 416);
          r.body = Error(ErrorCode::UploadRangeInvalid, "Content-Range " + std::string(*cr) +
                                                      " does not continue the upload at byte " + std::to_string(*staged))
                       .to_json();
          r.headers.add("Content-Type", "application/json");
        }
      }
      if (r.status != 416) {
        w.hash = digest_state(w.session);
        co_await append_body(ex, w);
        if (m == "PATCH") {
          w.session.digest_state = w.hash.save();
          w.session.updated = now_s();
          co_await backend([&] {
            c.check();
            meta.save_upload_progress(w.session);
          });
          r = upload_progress(req, name, id, w.session.size, 202);
        } else {
          co_await backend([&] {
            c.check();
            finish_upload(name, w, *want);
          });
          r = blob_created(req, name, *want);
        }
      }
      co_await c.release();
    }
    co_await ex.send(r);
  }

  asio::awaitable<void> referrers(Exchange& ex, const std::string& name, const std::string& ref) {
    ex.route = "referrers";
    const auto& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    Digest subject = parse_digest_or_throw(ref);
    auto filter = req.param("artifactType");
    json list = json::array();
    auto found = co_await backend([&] { return meta.referrers(name, subject.str()); });
    for (auto& m : found) {
      if (filter && m.artifact_type != *filter) continue;
      json d = {{"mediaType", m.media_type}, {"digest", m.digest}, {"size", m.body.size()}};
      if (!m.artifact_type.empty()) d["artifactType"] = m.artifact_type;
      if (!m.annotations.empty()) d["annotations"] = json::parse(m.annotations);
      list.push_back(std::move(d));
    }
    json idx = {{"schemaVersion", 2}, {"mediaType", image::kOciIndex}, {"manifests", list}};
    auto r = json_response(200, idx, image::kOciIndex);
    if (filter) r.headers.add("OCI-Filters-Applied", "artifactType");
    co_await ex.send(r);
  }

  // The token action a request needs: pull, push or delete.
  static std::string_view action_needed(Route::Kind k, const std::string& method) {
    if (k == Route::UploadStart || k == Route::Upload) return "push";
    if (k == Route::Manifest && method == "PUT") return "push";
    if ((k == Route::Manifest || k == Route::Blob) && method == "DELETE") return "delete";
    return "pull";
  }

  asio::awaitable<void> dispatch(Exchange& ex) {
    const auto& req = ex.request();
    Route r = parse_route(req.path);
    if (opts.read_only && req.method != "GET" && req.method != "HEAD")
      throw Error(ErrorCode::Unsupported,
                  "this registry is read-only for maintenance (read_only: true): pulls work, pushes and deletes do not");
    if (opts.access && (r.kind == Route::Base || r.kind == Route::Catalog))
      co_await backend([&] { opts.access->require(req, "", ""); });
    switch (r.kind) {
      case Route::Base: co_return co_await base(ex);
      case Route::Catalog: co_return co_await catalog(ex);
      case Route::Unknown: throw Error(ErrorCode::NotFound, "no such endpoint", req.path);
      default: break;
    }
    check_name(r.name);
    if (opts.access) {
      std::string_view action = action_needed(r.kind, req.method);
      co_await backend([&] {
        opts.access->require(req, r.name, action);
        if (action == "push") opts.access->prepare_push(req, r.name);
      });
    }
    switch (r.kind) {
      case Route::Manifest: co_return co_await manifest(ex, r.name, r.ref);
      case Route::Blob: co_return co_await blob(ex, r.name, r.ref);
      case Route::UploadStart: co_return co_await upload_start(ex, r.name);
      case Route::Upload: co_return co_await upload(ex, r.name, r.ref);
      case Route::Tags: co_return co_await tags(ex, r.name);
      case Route::Referrers: co_return co_await referrers(ex, r.name, r.ref);
      default: throw Error(ErrorCode::NotFound, "no such endpoint", req.path);
    }
  }
};

Registry::Registry(Options opts, storage::BlobStore& blobs, meta::MetadataStore& meta)
    : impl_(std::make_unique<Impl>(std::move(opts), blobs, meta)) {}
Registry::~Registry() = default;

asio::awaitable<void> Registry::handle(Exchange& ex) {
  std::optional<Error> err;
  try {
    co_await impl_->dispatch(ex);
  } catch (const Error& e) {
    err = e;
  } catch (const boost::system::system_error&) {
    throw;  // the connection broke: nothing to answer
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", ex.request().method, ex.request().target, e.what());
    err = Error(ErrorCode::Internal, "internal server error");
  }
  if (err) {
    if (ex.responded()) throw std::runtime_error("failed after the response started");
    Response r;
    co_await impl_->send_error(ex, *err, r);
  }
}

size_t Registry::purge_expired_uploads() {
  auto& im = *impl_;
  size_t n = 0;
  for (auto& u : im.meta.uploads_idle_since(now_s() - im.opts.uploads.expiry_seconds)) {
    {
      std::lock_guard lk(im.mu);
      if (im.busy.count(u.id)) continue;
    }
    auto held = im.meta.try_hold("upload:" + u.id);  // a replica writing it (a long PATCH updates the session at its end)
    if (!held) continue;
    if (im.opts.upload_observer) im.opts.upload_observer->dropped(u.id);
    im.blobs.delete_upload(u.id, u.driver_state);
    im.meta.delete_upload(u.id);
    ++n;
  }
  return n;
}

}  // namespace wharf::registry
