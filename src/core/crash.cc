#include "core/crash.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

namespace wharf::core {
void crash_point(std::string_view name) {
  static const std::string target = [] {
    const char* v = std::getenv("WHARF_CRASH_AT");
    return std::string(v ? v : "");
  }();
  if (!target.empty() && target == name) ::raise(SIGKILL);
  struct Pause {
    std::string at;
    long ms = 0;
  };
  static const Pause pause = [] {
    const char* v = std::getenv("WHARF_PAUSE_AT");
    std::string s = v ? v : "";
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return Pause{};
    return Pause{s.substr(0, colon), std::strtol(s.c_str() + colon + 1, nullptr, 10)};
  }();
  if (pause.ms > 0 && pause.at == name) std::this_thread::sleep_for(std::chrono::milliseconds(pause.ms));
}
}  // namespace wharf::core
