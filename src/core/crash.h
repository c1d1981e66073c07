// core/crash.h — named crash points for the durability tests.
//
// When the environment variable WHARF_CRASH_AT names a point, the process
// kills itself with SIGKILL the first time it reaches that point, exactly as a
// power cut or `kill -9` would. When WHARF_PAUSE_AT is `NAME:MS`, the thread
// reaching point NAME sleeps MS milliseconds each time (a slow disk, for
// tests of what others see meanwhile). Unset (production): one relaxed load
// of each, nothing else.
#pragma once

#include <string_view>

namespace wharf::core {
void crash_point(std::string_view name);
}
