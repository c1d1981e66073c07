// web/web.h — serves the web UI: `/` (index.html) and `/static/*`, from files
// embedded in the binary, with a Content-Security-Policy that allows only our
// own script and style (no inline script) and `frame-ancestors 'none'`.
// The UI itself talks to /api/v1 (api/).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string_view>

#include "http/server.h"

namespace wharf::web {

// True for the paths the UI answers: "/", "/index.html", "/static/...".
bool is_ui_path(std::string_view path);
// Answers GET/HEAD for a UI path (404 JSON for an unknown static file).
boost::asio::awaitable<void> handle(http::Exchange& ex);

}  // namespace wharf::web
