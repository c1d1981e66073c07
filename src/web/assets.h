// web/assets.h — the UI's files as compiled into the binary by
// cmake/embed.cmake (nothing is read from disk or fetched at run time).
#pragma once

#include <string_view>
#include <vector>

namespace wharf::web {

struct EmbeddedFile {
  std::string_view path;  // "/static/app.js", "/index.html"
  std::string_view body;
};
const std::vector<EmbeddedFile>& embedded_files();

}  // namespace wharf::web
