#include "cli/log.h"

#include <chrono>
#include <nlohmann/json.hpp>

namespace wharf::cli {

// Process messages (not request lines) in the configured format.
namespace {
bool g_json_logs = false;
}  // namespace

void set_json_logs(bool on) { g_json_logs = on; }

void say(spdlog::level::level_enum lvl, const std::string& msg) {
  if (g_json_logs)
    spdlog::log(lvl, "{}", nlohmann::json{{"level", spdlog::level::to_string_view(lvl).data()}, {"msg", msg}}.dump());
  else
    spdlog::log(lvl, "{}", msg);
}

void log_request(const core::Config& cfg, const http::Exchange& ex, double secs) {
  const auto& rq = ex.request();
  if (cfg.log.format == "json") {
    nlohmann::json j = {{"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
                        {"remote", rq.remote_addr}, {"method", rq.method}, {"target", rq.target},
                        {"route", ex.route},        {"status", ex.status}, {"bytes_in", ex.bytes_in},
                        {"bytes_out", ex.bytes_out}, {"duration_ms", secs * 1000.0}};
    spdlog::info("{}", j.dump());
  } else {
    spdlog::info("{} \"{} {}\" {} in={} out={} {:.3f}ms", rq.remote_addr, rq.method, rq.target, ex.status,
                 ex.bytes_in, ex.bytes_out, secs * 1000.0);
  }
}

}  // namespace wharf::cli
