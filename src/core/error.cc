#include "core/error.h"

#include <nlohmann/json.hpp>

namespace wharf::core {

namespace {
struct Row {
  std::string_view name;
  int status;
};
Row row(ErrorCode c) {
  switch (c) {
    case ErrorCode::BlobUnknown: return {"BLOB_UNKNOWN", 404};
    case ErrorCode::BlobUploadInvalid: return {"BLOB_UPLOAD_INVALID", 400};
    case ErrorCode::BlobUploadUnknown: return {"BLOB_UPLOAD_UNKNOWN", 404};
    case ErrorCode::DigestInvalid: return {"DIGEST_INVALID", 400};
    case ErrorCode::ManifestBlobUnknown: return {"MANIFEST_BLOB_UNKNOWN", 400};
    case ErrorCode::ManifestInvalid: return {"MANIFEST_INVALID", 400};
    case ErrorCode::ManifestUnknown: return {"MANIFEST_UNKNOWN", 404};
    case ErrorCode::NameInvalid: return {"NAME_INVALID", 400};
    case ErrorCode::NameUnknown: return {"NAME_UNKNOWN", 404};
    case ErrorCode::SizeInvalid: return {"SIZE_INVALID", 400};
    case ErrorCode::Unauthorized: return {"UNAUTHORIZED", 401};
    case ErrorCode::Denied: return {"DENIED", 403};
    case ErrorCode::Unsupported: return {"UNSUPPORTED", 405};
    case ErrorCode::TooManyRequests: return {"TOOMANYREQUESTS", 429};
    case ErrorCode::TagInvalid: return {"TAG_INVALID", 400};
    case ErrorCode::PaginationNumberInvalid: return {"PAGINATION_NUMBER_INVALID", 400};
    case ErrorCode::NotFound: return {"NOT_FOUND", 404};
    case ErrorCode::LayerInvalid: return {"LAYER_INVALID", 422};
    case ErrorCode::LimitExceeded: return {"LIMIT_EXCEEDED", 422};
    case ErrorCode::UploadRangeInvalid: return {"BLOB_UPLOAD_INVALID", 416};
    case ErrorCode::RangeNotSatisfiable: return {"SIZE_INVALID", 416};
    case ErrorCode::ManifestTooLarge: return {"SIZE_INVALID", 413};
    case ErrorCode::TooManyTags: return {"UNSUPPORTED", 414};
    case ErrorCode::Unavailable: return {"UNAVAILABLE", 503};
    case ErrorCode::Internal: return {"INTERNAL_ERROR", 500};
    case ErrorCode::BadRequest: return {"BAD_REQUEST", 400};
    case ErrorCode::Conflict: return {"CONFLICT", 409};
  }
  return {"UNKNOWN", 500};
}
}  // namespace

std::string_view code_name(ErrorCode c) { return row(c).name; }
int http_status(ErrorCode c) { return row(c).status; }

std::string Error::to_json() const {
  nlohmann::json e = {{"code", std::string(code_name(code_))}, {"message", what()}};
  if (!detail_.empty()) e["detail"] = detail_;
  nlohmann::json body = {{"errors", nlohmann::json::array({e})}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // details may echo client bytes
}

}  // namespace wharf::core
