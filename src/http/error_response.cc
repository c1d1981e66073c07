#include "http/error_response.h"

namespace wharf::http {

Response error_response(const core::Error& e) {
  Response r;
  r.status = e.status();
  r.headers.set("Content-Type", "application/json");
  for (const auto& [k, v] : e.headers()) r.headers.add(k, v);
  r.body = e.to_json();
  return r;
}

Response server_error_response(int status, std::string_view message) {
  using core::ErrorCode;
  ErrorCode code = status == 429 || status == 503 ? ErrorCode::TooManyRequests
                   : status == 500                ? ErrorCode::Internal
                                                  : ErrorCode::Unsupported;
  core::Error e(code, std::string(message));
  if (status == 429 || status == 503) e.with_header("Retry-After", "1");
  Response r = error_response(e);
  r.status = status;
  return r;
}

}  // namespace wharf::http
