// core/error.h — the one table of registry error codes (OCI Distribution Spec
// "Error Codes" plus the few Docker-era ones clients rely on), and the
// exception type that carries them out of a handler.
//
// Contract: every failure a client can see is an `Error`; the HTTP layer turns
// it into the spec's JSON body {"errors":[{"code","message","detail"}]} with
// the status from `http_status()`. Knows nothing of HTTP itself.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wharf::core {

enum class ErrorCode {
  BlobUnknown,
  BlobUploadInvalid,
  BlobUploadUnknown,
  DigestInvalid,
  ManifestBlobUnknown,
  ManifestInvalid,
  ManifestUnknown,
  NameInvalid,
  NameUnknown,
  SizeInvalid,
  Unauthorized,
  Denied,
  Unsupported,
  TooManyRequests,
  TagInvalid,
  PaginationNumberInvalid,
  NotFound,          // a path that is no endpoint of ours
  LayerInvalid,      // 422: an image whose layers cannot be squashed (corrupt, not tar, escapes the root)
  LimitExceeded,     // 422: an image over a configured squash limit
  UploadRangeInvalid,   // 416 BLOB_UPLOAD_INVALID: a chunk that does not continue the upload
  RangeNotSatisfiable,  // 416 SIZE_INVALID: a blob Range past the end
  ManifestTooLarge,  // 413
  TooManyTags,       // 414 UNSUPPORTED: more tag parameters than one push may carry
  Unavailable,       // 503
  Internal,          // 500
  BadRequest,        // 400: a malformed management API request or token request
  Conflict,          // 409: a name that is already taken
};

// The spec's code string, e.g. "BLOB_UNKNOWN".
std::string_view code_name(ErrorCode c);
// The HTTP status the registry answers with for this code.
int http_status(ErrorCode c);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string detail = {})
      : std::runtime_error(message), code_(code), detail_(std::move(detail)) {}
  ErrorCode code() const { return code_; }
  int status() const { return http_status(code_); }
  const std::string& detail() const { return detail_; }
  // Headers the response must carry (WWW-Authenticate, Retry-After).
  Error& with_header(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  // {"errors":[{"code":..,"message":..,"detail":..}]}; detail is a JSON
  // string when set, omitted otherwise.
  std::string to_json() const;

 private:
  ErrorCode code_;
  std::string detail_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

}  // namespace wharf::core
