// core/reference.h — the OCI Distribution reference grammar: repository
// names, tags. (Digests live in digest.h.)
#pragma once

#include <string_view>

namespace wharf::core {

// <name>: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
// and at most 255 characters in all.
bool valid_repository_name(std::string_view name);
// <reference> as a tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool valid_tag(std::string_view tag);

}  // namespace wharf::core
