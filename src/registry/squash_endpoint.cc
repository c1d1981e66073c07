#include "registry/squash_endpoint.h"

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/reference.h"
#include "registry/registry.h"
#include "squash/docker_archive.h"

namespace wharf::registry {

namespace asio = boost::asio;
using core::Error;
using core::ErrorCode;
using http::Response;
using squash::Job;

namespace {

const std::string kPlaceholderDigest = "sha256:" + std::string(64, '0');

// Host for RepoTags: configured, else forwarded, else the request's Host.
std::string request_host(const http::Request& req, const SquashOptions& o) {
  if (!o.repo_host.empty()) return o.repo_host;
  std::string base = base_url(req, o.external_url);
  auto p = base.find("://");
  return p == std::string::npos ? "" : base.substr(p + 3);
}

// Waits (without blocking the thread) until the job changes from what the
// caller last saw, or a short while passes.
asio::awaitable<void> wait_for_progress(Job& job, uint64_t seen_available, Job::State seen_state) {
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
  std::weak_ptr<asio::steady_timer> weak = timer;
  auto exec = timer->get_executor();
  int id = job.subscribe([weak, exec] {
    asio::post(exec, [weak] {
      if (auto t = weak.lock()) t->cancel();
    });
  });
  struct Unsub {
    Job& j;
    int id;
    ~Unsub() { j.unsubscribe(id); }
  } unsub{job, id};
  if (job.available() == seen_available && job.state() == seen_state) {
    timer->expires_after(std::chrono::milliseconds(100));
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::string etag_for(const squash::Image& img, const std::optional<std::string>& repo_tag) {
  return "\"" + core::sha256_of(img.key + "|" + repo_tag.value_or("") + "|identity").hex().substr(0, 40) + "\"";
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
    if (prime) {
      ex.route = "squash_prime";
      if (req.method != "POST") throw Error(ErrorCode::Unsupported, "prime with POST");
      auto img = svc_.resolve(name, ref, req.param("platform").value_or(""));
      auto job = svc_.acquire(img);
      Response r;
      r.status = 202;
      r.headers.add("Content-Type", "application/json");
      r.body = nlohmann::json{{"manifest", img.manifest_digest},
                              {"status", job->state() == Job::State::Done ? "cached" : "building"}}
                   .dump();
      co_await ex.send(r);
      co_return;
    }
    if (req.method != "GET" && req.method != "HEAD") throw Error(ErrorCode::Unsupported, "method not allowed");
    co_await serve(ex, name, ref, by_digest);
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
    Response r;
    r.status = err->status();
    r.headers.add("Content-Type", "application/json");
    if (err->code() == ErrorCode::Unavailable) r.headers.add("Retry-After", "5");
    r.body = err->to_json();
    co_await ex.send(r);
  }
}

asio::awaitable<void> SquashEndpoint::serve(http::Exchange& ex, const std::string& name, const std::string& ref,
                                            bool by_digest) {
  const auto& req = ex.request();
  ex.route = "squash";
  auto img = svc_.resolve(name, ref, req.param("platform").value_or(""));
  std::string host = request_host(req, opts_);
  squash::ArchiveLayout layout;
  layout.layer_dir = img.layer_dir;
  if (!by_digest && squash::valid_repo_tag(host, name, ref)) layout.repo_tag = host + "/" + name + ":" + ref;
  // The config's length does not depend on the diff_id: a placeholder sizes it.
  const std::string sizing_config = squash::squashed_config(img.config, kPlaceholderDigest, img.manifest_digest);

  Response r;
  r.headers.add("Content-Type", "application/x-tar");
  r.headers.add("ETag", etag_for(img, layout.repo_tag));
  r.headers.add("Vary", "Accept-Encoding");
  r.headers.add("X-Wharf-Source-Manifest", img.manifest_digest);
  std::string file = name.substr(name.rfind('/') + 1) + "-" + (by_digest ? img.manifest_digest.substr(7, 12) : ref);
  r.headers.add("Content-Disposition", "attachment; filename=\"" + file + ".tar\"");

  if (req.is_head()) {
    layout.layer_size = svc_.planned_layer_size(img);
    r.content_length = squash::archive_size(layout, sizing_config);
    r.headers.add("Accept-Ranges", svc_.cached(img) ? "bytes" : "none");
    co_await ex.send(r);
    co_return;
  }

  auto job = svc_.acquire(img);
  // Until the plan exists nothing is sent: failures here are JSON errors.
  for (;;) {
    auto st = job->state();
    if (st == Job::State::Failed) std::rethrow_exception(job->failure());
    if (st == Job::State::Writing || st == Job::State::Done) break;
    co_await wait_for_progress(*job, job->available(), st);
  }
  layout.layer_size = job->layer_size();
  const uint64_t total = squash::archive_size(layout, sizing_config);
  std::string head = squash::archive_head(layout);

  // Cached: whole archive known; Range is served from it.
  if (job->state() == Job::State::Done) {
    std::string tail = squash::archive_tail(layout, job->config());
    r.headers.add("Accept-Ranges", "bytes");
    uint64_t first = 0, last = total - 1;
    if (auto rh = req.headers.get("Range")) {
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
        r.headers.add("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                           std::to_string(total));
      }
    }
    r.content_length = last - first + 1;
    co_await ex.begin(r);
    // Three segments: head (memory), layer (file), tail (memory).
    const uint64_t layer_start = head.size(), tail_start = head.size() + layout.layer_size;
    auto part = [&](uint64_t seg_start, uint64_t seg_len, uint64_t& off, uint64_t& len) {
      uint64_t a = std::max(first, seg_start), b = std::min(last + 1, seg_start + seg_len);
      off = a - seg_start;
      len = a < b ? b - a : 0;
    };
    uint64_t off, len;
    part(0, head.size(), off, len);
    if (len) co_await ex.write({head.data() + off, len});
    part(layer_start, layout.layer_size, off, len);
    if (len) {
      auto rd = job->open_at(off);
      if (!rd) throw std::runtime_error("cached squash layer vanished");
      if (rd->native_fd() >= 0) {
        co_await ex.write_file(rd->native_fd(), rd->native_offset(), len);
      } else {
        std::vector<char> buf(1 << 20);
        while (len) {
          size_t n = rd->read(buf.data(), std::min<uint64_t>(len, buf.size()));
          if (!n) throw std::runtime_error("cached squash layer ended early");
          co_await ex.write({buf.data(), n});
          len -= n;
        }
      }
    }
    part(tail_start, tail.size(), off, len);
    if (len) co_await ex.write({tail.data() + off, len});
    co_await ex.end();
    co_return;
  }

  // Building: stream the layer as it grows; the tail needs the finished config.
  r.content_length = total;
  co_await ex.begin(r);
  co_await ex.write({head.data(), head.size()});
  uint64_t sent = 0;
  std::vector<char> buf(1 << 20);
  while (sent < layout.layer_size) {
    uint64_t avail = job->available();
    auto st = job->state();
    if (st == Job::State::Failed) throw std::runtime_error("squash build failed mid-stream");
    if (st == Job::State::Done) avail = layout.layer_size;
    if (avail <= sent) {
      co_await wait_for_progress(*job, avail, st);
      continue;
    }
    auto rd = job->open_at(sent);
    uint64_t want = avail - sent;
    if (rd->native_fd() >= 0) {
      co_await ex.write_file(rd->native_fd(), rd->native_offset(), want);
      sent += want;
    } else {
      while (want) {
        size_t n = rd->read(buf.data(), std::min<uint64_t>(want, buf.size()));
        if (!n) throw std::runtime_error("squash staging ended early");
        co_await ex.write({buf.data(), n});
        want -= n;
        sent += n;
      }
    }
  }
  while (job->state() != Job::State::Done) {
    if (job->state() == Job::State::Failed) throw std::runtime_error("squash build failed at the end");
    co_await wait_for_progress(*job, job->available(), job->state());
  }
  std::string tail = squash::archive_tail(layout, job->config());
  co_await ex.write({tail.data(), tail.size()});
  co_await ex.end();
}

}  // namespace wharf::registry
