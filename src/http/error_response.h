// http/error_response.h — the one conversion from a core::Error to a
// response (status, Content-Type, the error's headers, the spec's JSON error
// body), used by /v2/, /api/v1/, /v2/auth, /c1/squash and the process's own
// endpoints. Its own target (wharf_http_errors): the server itself knows
// nothing of these errors and takes `server_error_response` as its
// ServerOptions::error_response formatter.
#pragma once

#include <string_view>

#include "core/error.h"
#include "http/message.h"

namespace wharf::http {

Response error_response(const core::Error& e);

// What the server answers for requests no handler saw or a handler that
// failed before responding: 429/503 TOOMANYREQUESTS with Retry-After: 1,
// 500 INTERNAL_ERROR, anything else UNSUPPORTED; the status as given.
Response server_error_response(int status, std::string_view message);

}  // namespace wharf::http
