#include "cli/endpoints.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/metrics.h"
#include "http/error_response.h"

namespace wharf::cli {

boost::asio::awaitable<void> process_endpoint(http::Exchange& ex, meta::MetadataStore& meta, storage::BlobStore& blobs,
                                              http::Offload* offload) {
  const auto& path = ex.request().path;
  http::Response r;
  r.headers.add("Content-Type", "application/json");
  if (path == "/health/instance") {
    ex.route = "health";
    r.body = R"({"status":"ok"})";
  } else if (path == "/health/endtoend") {
    ex.route = "health";
    // Each store on its own: one failing does not hide the other's state.
    auto check = [](auto&& probe) -> std::string {
      try {
        probe();
        return "ok";
      } catch (const std::exception& e) {
        return e.what();
      }
    };
    nlohmann::json body = co_await http::run_on(offload, [&] {
      return nlohmann::json{{"metadata", check([&] { meta.probe(); })}, {"storage", check([&] { blobs.probe(); })}};
    });
    bool ok = body["metadata"] == "ok" && body["storage"] == "ok";
    body["status"] = ok ? "ok" : "failing";
    if (!ok) {
      r.status = 503;
      body["error"] = body["metadata"] != "ok" ? "metadata: " + body["metadata"].get<std::string>()
                                               : "storage: " + body["storage"].get<std::string>();
    }
    r.body = body.dump();
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
