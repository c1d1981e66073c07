// core/clock.h — wall-clock time as the stores and tokens record it.
#pragma once

#include <chrono>
#include <cstdint>

namespace wharf::core {

inline int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
inline int64_t unix_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wharf::core
