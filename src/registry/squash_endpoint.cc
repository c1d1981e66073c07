#include "registry/squash_endpoint.h"

#include "http/error_response.h"

#include <atomic>
#include <boost/asio.hpp>
#include <cstdlib>
#include <functional>
#include <boost/asio/as_tuple.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/metrics.h"
#include "core/reference.h"
#include "registry/registry.h"
#include "squash/docker_archive.h"
#include "squash/follower.h"
#include "squash/gzip.h"

namespace wharf::registry {

namespace asio = boost::asio;
using core::Error;
using core::ErrorCode;
using http::Response;
using squash::Job;

namespace {

// The RepoTags host a relaying replica worked out for its client (signed with the request).
constexpr const char* kRepoHostHeader = "X-Wharf-Repo-Host";

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const std::string kPlaceholderDigest = "sha256:" + std::string(64, '0');
const char* const kReadOnly =
    "this registry is read-only for maintenance (read_only: true): only squashes already cached are served";

// Host for RepoTags: configured, else forwarded, else the request's Host.
std::string request_host(const http::Request& req, const SquashOptions& o) {
  if (!o.repo_host.empty()) return o.repo_host;
  std::string base = http::base_url(req, o.external_url);
  auto p = base.find("://");
  return p == std::string::npos ? "" : base.substr(p + 3);
}

// A nap on the connection's strand that another thread can cut short:
// wake() may run anywhere; it posts the cancel to the strand, so it is
// serialised with the coroutine. A wake that comes before the nap starts is
// lost, hence the short nap and the callers' re-checks.
class Nap {
 public:
  explicit Nap(asio::any_io_executor exec) : timer_(std::make_shared<asio::steady_timer>(exec)) {}
  std::function<void()> waker() const {
    return [weak = std::weak_ptr<asio::steady_timer>(timer_), exec = timer_->get_executor()] {
      asio::post(exec, [weak] {
        if (auto t = weak.lock()) t->cancel();
      });
    };
  }
  asio::awaitable<void> operator()() {
    timer_->expires_after(std::chrono::milliseconds(100));
    co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
  }

 private:
  std::shared_ptr<asio::steady_timer> timer_;
};

// Waits (without blocking the thread) until the job changes after `seen`
// (its changes() read before the caller looked at it), or a short while passes.
asio::awaitable<void> wait_for_progress(Job& job, uint64_t seen) {
  Nap nap(co_await asio::this_coro::executor);
  int id = job.subscribe(nap.waker());
  struct Unsub {
    Job& j;
    int id;
    ~Unsub() { j.unsubscribe(id); }
  } unsub{job, id};
  if (job.changes() == seen) co_await nap();
}

// The exact layer.tar size, planned by the service on its planning thread:
// this thread serves other connections meanwhile. Throws what planning threw.
asio::awaitable<uint64_t> planned_layer_size(squash::Service& svc, const squash::Image& img) {
  struct Result {
    std::atomic<bool> done{false};
    uint64_t size = 0;
    std::exception_ptr error;
  };
  auto res = std::make_shared<Result>();
  Nap nap(co_await asio::this_coro::executor);
  svc.plan_layer_size(img, [res, wake = nap.waker()](uint64_t size, std::exception_ptr e) {
    res->size = size;
    res->error = e;
    res->done = true;
    wake();
  });
  while (!res->done) co_await nap();
  if (res->error) std::rethrow_exception(res->error);
  co_return res->size;
}

std::string etag_for(const squash::Image& img, const std::optional<std::string>& repo_tag, bool gzip) {
  return "\"" +
         core::sha256_of(img.key + "|" + repo_tag.value_or("") + (gzip ? "|gzip" : "|identity")).hex().substr(0, 40) +
         "\"";
}

// True when Accept-Encoding admits gzip (q > 0).
bool accepts_gzip(const http::Request& req) {
  for (auto v : req.headers.all("Accept-Encoding")) {
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      size_t semi = item.find(';');
      std::string_view name = item.substr(0, semi);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (name != "gzip" && name != "x-gzip" && name != "*") continue;
      double q = 1;
      if (semi != std::string_view::npos)
        if (auto at = item.find("q=", semi); at != std::string_view::npos)
          q = std::strtod(std::string(item.substr(at + 2)).c_str(), nullptr);
      if (q > 0) return true;
    }
  }
  return false;
}

// The bytes around the cached gzip piece of a layer that make one gzip
// member of the whole archive: header + deflated head before it, deflated
// tail + CRC-32 + length after it.
std::pair<std::string, std::string> gzip_wrapping(const std::string& head, const std::string& tail,
                                                  uint32_t layer_crc, uint64_t layer_size) {
  uint32_t crc = squash::crc32_combine(squash::crc32_update(0, head.data(), head.size()), layer_crc, layer_size);
  crc = squash::crc32_combine(crc, squash::crc32_update(0, tail.data(), tail.size()), tail.size());
  uint64_t plain = head.size() + layer_size + tail.size();
  return {squash::gzip_header() + squash::deflate_piece(head, false),
          squash::deflate_piece(tail, true) + squash::gzip_trailer(crc, plain)};
}

// One piece of a response body: bytes in memory, or a range of a blob.
struct Segment {
  std::string mem;
  std::unique_ptr<storage::BlobReader> file;  // positioned at its start
  uint64_t len = 0;
  // Opens the blob again at an offset (for a Range starting inside it).
  std::function<std::unique_ptr<storage::BlobReader>(uint64_t)> reopen;
};

// Sends `segs` (their concatenation is the representation), honouring a
// single Range over the whole.
// Reads of a segment without a file descriptor (an object store's reader)
// run on `offload`.
asio::awaitable<void> send_segments(http::Exchange& ex, Response& r, std::vector<Segment>& segs,
                                    http::Offload* offload) {
  uint64_t total = 0;
  for (auto& s : segs) total += s.len;
  uint64_t first = 0, last = total ? total - 1 : 0;
  r.headers.add("Accept-Ranges", "bytes");
  if (auto rh = ex.request().headers.get("Range")) {
    http::ByteRange br;
    auto rr = http::parse_range(*rh, total, br);
    if (rr == http::RangeResult::Unsatisfiable) {
      Response e;
      e.status = 416;
      e.headers.add("Content-Range", "bytes */" + std::to_string(total));
      e.headers.add("Content-Type", "application/json");
      e.body = Error(ErrorCode::RangeNotSatisfiable, "requested range not satisfiable", std::string(*rh)).to_json();
      co_await ex.send(e);
      co_return;
    }
    if (rr == http::RangeResult::Ok) {
      first = br.first;
      last = br.last;
      r.status = 206;
      r.headers.add("Content-Range",
                    "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(total));
    }
  }
  r.content_length = total ? last - first + 1 : 0;
  co_await ex.begin(r);
  uint64_t seg_start = 0;
  std::vector<char> buf;
  for (auto& s : segs) {
    uint64_t a = std::max(first, seg_start), b = std::min(last + 1, seg_start + s.len);
    seg_start += s.len;
    if (a >= b) continue;
    uint64_t off = a - (seg_start - s.len), len = b - a;
    if (!s.file) {
      co_await ex.write({s.mem.data() + off, len});
    } else if (s.file->native_fd() >= 0) {  // a local file: sendfile from the offset
      co_await ex.write_file(s.file->native_fd(), s.file->native_offset() + off, len);
    } else {
      buf.resize(1 << 20);
      if (off) {  // readers are sequential: opened again at the range's start
        s.file = co_await http::run_on(offload, [&] { return s.reopen(off); });
        if (!s.file) throw std::runtime_error("cached squash blob vanished");
      }
      while (len) {
        size_t n = co_await http::run_on(offload, [&] { return s.file->read(buf.data(), std::min<uint64_t>(len, buf.size())); });
        if (!n) throw std::runtime_error("cached squash blob ended early");
        co_await ex.write({buf.data(), n});
        len -= n;
      }
    }
  }
  co_await ex.end();
}

}  // namespace

asio::awaitable<void> SquashEndpoint::handle(http::Exchange& ex) {
  std::optional<Error> err;
  try {
    const auto& req = ex.request();
    std::string rest = req.path.substr(std::string_view("/c1/squash/").size());
    bool prime = false;
    if (rest.ends_with("/prime")) {
      prime = true;
      rest.resize(rest.size() - 6);
    }
    std::string name, ref;
    bool by_digest = false;
    if (auto at = rest.find('@'); at != std::string::npos) {
      name = rest.substr(0, at);
      ref = rest.substr(at + 1);
      by_digest = true;
    } else if (auto slash = rest.rfind('/'); slash != std::string::npos) {
      name = rest.substr(0, slash);
      ref = rest.substr(slash + 1);
    }
    if (name.empty() || ref.empty())
      throw Error(ErrorCode::NotFound, "use /c1/squash/<name>/<tag> or /c1/squash/<name>@<digest>", req.path);
    if (!core::valid_repository_name(name)) throw Error(ErrorCode::NameInvalid, "invalid repository name", name);
    // A request relayed by another replica (which authorized its client and
    // audits the pull) is signed with the cluster secret.
    std::optional<std::string> relay_host;
    if (auto sig = req.headers.get(cluster::PeerAuth::kHeader)) {
      std::string host(req.headers.get(kRepoHostHeader).value_or(""));
      if (!opts_.peers || !opts_.peers->verify(*sig, req.method, req.target, host, unix_now()))
        throw Error(ErrorCode::Unauthorized,
                    "a replica-to-replica request whose signature is wrong or expired (cluster.secret_file, clocks)");
      if (prime || (req.method != "GET" && req.method != "HEAD"))
        throw Error(ErrorCode::Unsupported, "replicas relay squash GETs only");
      relay_host = std::move(host);
    }
    auth::AccessControl::Caller caller;
    if (opts_.access && !relay_host)
      caller = co_await http::run_on(opts_.offload,
                                     [&] { return opts_.access->require_direct(req, name, prime ? "push" : "pull"); });
    if (prime) {
      ex.route = "squash_prime";
      if (req.method != "POST") throw Error(ErrorCode::Unsupported, "prime with POST");
      if (opts_.read_only) throw Error(ErrorCode::Unsupported, kReadOnly);
      squash::Image img;
      std::shared_ptr<Job> job;  // none: another replica builds it
      co_await http::run_on(opts_.offload, [&] {
        img = svc_.resolve(name, ref, req.param("platform").value_or(""));
        job = svc_.acquire(img).job;
      });
      Response r;
      r.status = 202;
      r.headers.add("Content-Type", "application/json");
      r.body = nlohmann::json{{"manifest", img.manifest_digest},
                              {"status", job && job->state() == Job::State::Done ? "cached" : "building"}}
                   .dump();
      co_await ex.send(r);
      co_return;
    }
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    if (opts_.access && req.method == "GET" && !relay_host)
      opts_.access->audit(req, &caller, "squash_pull", name,
                          nlohmann::json{{"reference", ref}, {"platform", req.param("platform").value_or("")}});
    co_await serve(ex, name, ref, by_digest, relay_host);
  } catch (const Error& e) {
    err = e;
  } catch (const boost::system::system_error&) {
    throw;
  } catch (const std::exception& e) {
    if (ex.responded()) throw;
    spdlog::error("squash {}: {}", ex.request().target, e.what());
    err = Error(ErrorCode::Internal, "internal server error");
  }
  if (err) {
    if (ex.responded()) throw std::runtime_error(err->what());  // truncate the body
    if (err->code() == ErrorCode::Unavailable) err->with_header("Retry-After", "5");
    Response r = http::error_response(*err);
    co_await ex.send(r);
  }
}

// What every response for one squash request shares: the image, the
// archive's layout and the response headers set so far.
struct SquashEndpoint::Reply {
  squash::Image img;
  squash::ArchiveLayout layout;
  std::string sizing_config;  // the config with a placeholder diff_id: same length as the real one
  bool gzip = false;
  std::string etag;
  Response r;
  // Strong for bytes that are the same on every request (identity, and gzip
  // from the cached piece); weak for gzip compressed on the fly, whose bytes
  // differ from the cached piece's though they inflate to the same archive.
  void set_etag(bool weak) { r.headers.set("ETag", weak ? "W/" + etag : etag); }
};

asio::awaitable<void> SquashEndpoint::serve(http::Exchange& ex, const std::string& name, const std::string& ref,
                                            bool by_digest, const std::optional<std::string>& relay_host) {
  const auto& req = ex.request();
  ex.route = "squash";
  Reply rep;
  rep.img = co_await http::run_on(opts_.offload,
                                  [&] { return svc_.resolve(name, ref, req.param("platform").value_or("")); });
  const squash::Image& img = rep.img;
  std::string host = relay_host ? *relay_host : request_host(req, opts_);
  rep.layout.layer_dir = img.layer_dir;
  if (!by_digest && squash::valid_repo_tag(host, name, ref)) rep.layout.repo_tag = host + "/" + name + ":" + ref;
  // The config's length does not depend on the diff_id: a placeholder sizes it.
  rep.sizing_config = squash::squashed_config(img.config, kPlaceholderDigest, img.manifest_digest);
  rep.gzip = accepts_gzip(req);
  Response& r = rep.r;
  r.headers.add("Content-Type", "application/x-tar");
  rep.etag = etag_for(img, rep.layout.repo_tag, rep.gzip);
  rep.set_etag(rep.gzip);
  r.headers.add("Vary", "Accept-Encoding");
  r.headers.add("X-Wharf-Source-Manifest", img.manifest_digest);
  std::string file = name.substr(name.rfind('/') + 1) + "-" + (by_digest ? img.manifest_digest.substr(7, 12) : ref);
  r.headers.add("Content-Disposition", "attachment; filename=\"" + file + ".tar\"");

  if (req.is_head()) co_return co_await serve_head(ex, rep);
  if (opts_.read_only) {
    auto rec = co_await http::run_on(opts_.offload, [&] { return svc_.cached(img); });
    if (!rec) throw Error(ErrorCode::Unsupported, kReadOnly);
  }
  // Another replica may hold the build's lease: its stream is relayed (a few
  // tries, as its record may lag its lease, or the builder just died and the
  // lease is free again).
  std::shared_ptr<Job> job;
  for (int attempt = 0;; ++attempt) {
    auto acq = co_await http::run_on(opts_.offload, [&] { return svc_.acquire(img); });
    job = acq.job;
    if (job) break;
    if (relay_host)
      throw Error(ErrorCode::Unavailable, "this replica does not build this squash (another one does); retry");
    if (!acq.builder.empty() && opts_.peers && co_await relay(ex, acq.builder, host)) co_return;
    if (attempt >= 20)
      throw Error(ErrorCode::Unavailable, "this squash is being built by another process that cannot be reached; retry");
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100 + 20 * attempt));
    co_await t.async_wait(asio::use_awaitable);
  }
  // Until the plan exists nothing is sent: failures here are JSON errors.
  for (;;) {
    uint64_t seen;
    auto start = squash::start_of(*job, seen);
    if (start == squash::Start::Wait) {
      co_await wait_for_progress(*job, seen);
      continue;
    }
    rep.layout.layer_size = job->layer_size();
    if (start == squash::Start::Cached && co_await serve_cached(ex, rep, *job)) co_return;
    co_return co_await serve_following(ex, rep, job);
  }
}

asio::awaitable<void> SquashEndpoint::serve_head(http::Exchange& ex, Reply& rep) {
  Response& r = rep.r;
  auto rec = co_await http::run_on(opts_.offload, [&] { return svc_.cached(rep.img); });
  if (rec)
    rep.layout.layer_size = rec->layer_size;
  else
    rep.layout.layer_size = co_await planned_layer_size(svc_, rep.img);  // not in a ?: (GCC 12 miscompiles it)
  if (rep.gzip && rec && rec->gz_size) {
    r.headers.add("Content-Encoding", "gzip");
    auto [pre, post] = gzip_wrapping(squash::archive_head(rep.layout), squash::archive_tail(rep.layout, rec->config),
                                     rec->layer_crc, rec->layer_size);
    r.content_length = pre.size() + rec->gz_size + post.size();
    rep.set_etag(false);
  } else if (rep.gzip) {
    r.headers.add("Content-Encoding", "gzip");  // compressed on the fly: length unknown until sent
    r.length_unknown = true;  // chunked, as the GET will be; never "Content-Length: 0"
  } else {
    r.content_length = squash::archive_size(rep.layout, rep.sizing_config);
  }
  r.headers.add("Accept-Ranges", rec ? "bytes" : "none");
  co_await ex.send(r);
}

asio::awaitable<bool> SquashEndpoint::serve_cached(http::Exchange& ex, Reply& rep, squash::Job& job) {
  const std::string head = squash::archive_head(rep.layout);
  const std::string tail = squash::archive_tail(rep.layout, job.config());
  std::vector<Segment> segs;
  if (rep.gzip) {
    auto gz = job.gzip();
    std::unique_ptr<storage::BlobReader> piece;
    if (gz) piece = co_await http::run_on(opts_.offload, [&] { return job.open_gzip(); });  // not in a ?: (GCC 12)
    if (!piece) co_return false;  // no gzip piece yet: compressed on the fly
    rep.r.headers.add("Content-Encoding", "gzip");
    rep.set_etag(false);
    auto [pre, post] = gzip_wrapping(head, tail, gz->layer_crc, rep.layout.layer_size);
    segs.push_back({pre, nullptr, pre.size(), {}});
    segs.push_back({"", std::move(piece), gz->size, [&job](uint64_t off) { return job.open_gzip(off); }});
    segs.push_back({post, nullptr, post.size(), {}});
  } else {
    segs.push_back({head, nullptr, head.size(), {}});
    auto layer = co_await http::run_on(opts_.offload, [&] { return job.open_at(0); });
    segs.push_back({"", std::move(layer), rep.layout.layer_size, [&job](uint64_t off) { return job.open_at(off); }});
    segs.push_back({tail, nullptr, tail.size(), {}});
  }
  co_await send_segments(ex, rep.r, segs, opts_.offload);
  co_return true;
}

asio::awaitable<void> SquashEndpoint::serve_following(http::Exchange& ex, Reply& rep,
                                                      const std::shared_ptr<squash::Job>& job) {
  Response& r = rep.r;
  std::optional<squash::Deflater> deflater;
  std::string pending;
  if (rep.gzip) {
    r.headers.add("Content-Encoding", "gzip");
    deflater.emplace([&pending](const char* p, size_t n) { pending.append(p, n); });
    pending = squash::gzip_header();
  } else {
    r.content_length = squash::archive_size(rep.layout, rep.sizing_config);
  }
  co_await ex.begin(r);
  // Sends `n` bytes, through the deflater when gzip.
  auto emit = [&](const char* p, size_t n) -> asio::awaitable<void> {
    if (!deflater) {
      co_await ex.write({p, n});
      co_return;
    }
    deflater->write(p, n);
    if (!pending.empty()) {
      co_await ex.write({pending.data(), pending.size()});
      pending.clear();
    }
  };
  const std::string head = squash::archive_head(rep.layout);
  co_await emit(head.data(), head.size());
  squash::Follower follow(job);
  std::vector<char> buf;
  for (;;) {
    auto step = follow.next();
    if (step.kind == squash::Follower::Step::End) break;
    if (step.kind == squash::Follower::Step::Wait) {
      co_await wait_for_progress(*job, step.seen);
    } else if (step.kind == squash::Follower::Step::Memory) {
      co_await emit(step.data, step.size);
      follow.sent(step.size);
    } else if (!deflater && step.file->native_fd() >= 0) {
      co_await ex.write_file(step.file->native_fd(), step.file->native_offset(), step.size);
      follow.sent(step.size);
    } else {
      buf.resize(1 << 20);
      for (uint64_t want = step.size; want;) {
        size_t n = step.file->read(buf.data(), std::min<uint64_t>(want, buf.size()));
        if (!n) throw std::runtime_error("squash staging ended early");
        co_await emit(buf.data(), n);
        want -= n;
      }
      follow.sent(step.size);
    }
  }
  std::string tail = squash::archive_tail(rep.layout, follow.config());
  co_await emit(tail.data(), tail.size());
  if (deflater) {
    deflater->finish();
    pending += squash::gzip_trailer(deflater->crc(), deflater->in_bytes());
    co_await ex.write({pending.data(), pending.size()});
  }
  co_await ex.end();
}

asio::awaitable<bool> SquashEndpoint::relay(http::Exchange& ex, const std::string& builder, const std::string& host) {
  const auto& req = ex.request();
  std::vector<std::string> headers{
      std::string(cluster::PeerAuth::kHeader) + ": " + opts_.peers->sign("GET", req.target, host, unix_now()),
      std::string(kRepoHostHeader) + ": " + host};
  for (const char* h : {"Accept-Encoding", "Range", "If-Range"})
    if (auto v = req.headers.get(h)) headers.push_back(std::string(h) + ": " + std::string(*v));
  if (!req.headers.get("Accept-Encoding")) headers.push_back("Accept-Encoding: identity");  // curl adds none; be explicit
  Nap nap(co_await asio::this_coro::executor);
  cluster::PeerFetch fetch("http://" + builder + req.target, std::move(headers), nap.waker());
  std::string body;
  cluster::PeerFetch::Poll p;
  for (p = fetch.poll(body); !p.head && !p.ended; p = fetch.poll(body)) co_await nap();
  if (!p.head) {
    spdlog::warn("squash relay from {} failed before its answer: {}", builder, p.failed);
    co_return false;
  }
  // 503 from the builder: it no longer builds this (relayed requests are not relayed again).
  if (p.head->status == 503) co_return false;
  Response r;
  r.status = p.head->status;
  for (auto& [k, v] : p.head->headers) {
    std::string n = k;
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == "content-length") {
      r.content_length = std::strtoull(v.c_str(), nullptr, 10);
    } else if (n == "transfer-encoding" || n == "connection" || n == "keep-alive" || n == "date" || n == "server" ||
               n == "docker-distribution-api-version") {
      continue;  // this connection's own
    } else {
      r.headers.add(k, v);
    }
  }
  core::Metrics::global().add("wharf_squash_relays_total");
  co_await ex.begin(r);
  for (;;) {
    if (!body.empty()) {
      co_await ex.write({body.data(), body.size()});
      body.clear();
    }
    if (p.ended) break;
    p = fetch.poll(body);
    if (body.empty() && !p.ended) co_await nap();
  }
  if (!p.failed.empty()) throw std::runtime_error("squash relay from " + builder + " broke: " + p.failed);
  co_await ex.end();
  co_return true;
}

}  // namespace wharf::registry
