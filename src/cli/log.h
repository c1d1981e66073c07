// cli/log.h — the process's own messages and the request log line, in the
// configured format (log.format: text or json). Called from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "core/config.h"
#include "http/server.h"

namespace wharf::cli {

// Switches process messages to JSON lines (before any other thread logs).
void set_json_logs(bool on);
// A process message (not a request line).
void say(spdlog::level::level_enum lvl, const std::string& msg);
// The access-log line of a finished exchange.
void log_request(const core::Config& cfg, const http::Exchange& ex, double secs);

}  // namespace wharf::cli
