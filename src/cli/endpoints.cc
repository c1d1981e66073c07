#include "cli/endpoints.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/metrics.h"
#include "http/error_response.h"

namespace wharf::cli {

boost::asio::awaitable<void> process_endpoint(http::Exchange& ex, meta::MetadataStore& meta, storage::BlobStore& blobs) {
  const auto& path = ex.request().path;
  http::Response r;
  r.headers.add("Content-Type", "application/json");
  if (path == "/health/instance") {
    ex.route = "health";
    r.body = R"({"status":"ok"})";
  } else if (path == "/health/endtoend") {
    ex.route = "health";
    try {
      meta.probe();
      blobs.probe();
      r.body = R"({"status":"ok","metadata":"ok","storage":"ok"})";
    } catch (const std::exception& e) {
      r.status = 503;
      r.body = nlohmann::json{{"status", "failing"}, {"error", e.what()}}.dump();
    }
  } else if (path == "/metrics") {
    ex.route = "metrics";
    r.headers.set("Content-Type", "text/plain; version=0.0.4");
    r.body = core::Metrics::global().render();
  } else {
    ex.route = "not_found";
    r = http::error_response(core::Error(core::ErrorCode::NotFound, "no such endpoint", path));
  }
  co_await ex.send(r);
}

}  // namespace wharf::cli
