#include "web/web.h"

#include "core/digest.h"
#include "web/assets.h"

namespace wharf::web {

namespace {

constexpr std::string_view kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

std::string_view content_type(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".png")) return "image/png";
  if (path.ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

bool is_ui_path(std::string_view path) {
  return path == "/" || path == "/index.html" || path.starts_with("/static/");
}

boost::asio::awaitable<void> handle(http::Exchange& ex) {
  ex.route = "ui";
  const auto& req = ex.request();
  std::string_view path = req.path == "/" ? "/index.html" : std::string_view(req.path);
  http::Response r;
  r.headers.add("Content-Security-Policy", std::string(kCsp));
  r.headers.add("X-Content-Type-Options", "nosniff");
  r.headers.add("Referrer-Policy", "no-referrer");
  r.headers.add("X-Frame-Options", "DENY");
  const EmbeddedFile* file = nullptr;
  for (auto& f : embedded_files())
    if (f.path == path) file = &f;
  if (req.method != "GET" && req.method != "HEAD") {
    r.status = 405;
    r.headers.add("Allow", "GET, HEAD");
  } else if (!file) {
    r.status = 404;
    r.headers.add("Content-Type", "text/plain; charset=utf-8");
    r.body = "not found\n";
  } else {
    // ETag: hash of the embedded bytes (the binary's version), computed once.
    static const auto etags = [] {
      std::vector<std::string> v;
      for (auto& f : embedded_files()) v.push_back("\"" + core::sha256_of(f.body).hex().substr(0, 20) + "\"");
      return v;
    }();
    std::string etag = etags[static_cast<size_t>(file - embedded_files().data())];
    r.headers.add("Content-Type", std::string(content_type(path)));
    r.headers.add("ETag", etag);
    r.headers.add("Cache-Control", "no-cache");  // revalidate by ETag: a new binary serves new assets
    auto inm = req.headers.get("If-None-Match");
    if (inm && *inm == etag) {
      r.status = 304;
    } else {
      r.body = std::string(file->body);
    }
  }
  co_await ex.send(r);
}

}  // namespace wharf::web
