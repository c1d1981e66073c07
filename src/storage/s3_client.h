// storage/s3_client.h — the S3 requests the s3 driver makes, signed with
// AWS Signature Version 4, over libcurl.
//
// What is hand-written and why: Debian has no AWS SDK for C++, and libs3 is
// SigV2-only without multipart uploads. libcurl (7.88) signs requests itself
// (CURLOPT_AWS_SIGV4) but signs the query string as given, so queries are
// built here already canonical (keys sorted, values percent-encoded, `key=`
// for bare keys), and it cannot presign: presigned GET URLs are signed here
// with OpenSSL's HMAC-SHA256 (the SigV4 query-string algorithm). It also
// orders the canonical headers by "name:value" rather than by name, which
// is wrong when one header's name is a prefix of another's
// (x-amz-copy-source, x-amz-copy-source-range: UploadPartCopy of a range,
// for blobs over 5 GiB): such requests are signed here (Authorization
// header, the same algorithm). XML answers are parsed with pugixml.
//
// Thread safety: safe for concurrent use; each thread reuses its own curl
// handle, so connections to the store are kept alive per thread. Requests
// block the calling thread: callers run them off the I/O threads.
//
// Failures: every request has a connect and a low-speed timeout; transient
// failures (connection errors, 5xx, SlowDown) are retried with backoff up to
// `retries` times for requests that are safe to repeat (every request here
// is: S3 writes of a whole object or part are idempotent). Then S3Error.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::storage::s3 {

struct Options {
  std::string endpoint;         // http(s)://host:port
  std::string public_endpoint;  // presigned URLs use it ("" : endpoint)
  std::string region = "us-east-1";
  std::string bucket;
  std::string access_key;
  std::string secret_key;
  bool path_style = true;  // http://host/bucket/key (else http://bucket.host/key)
  bool tls_verify = true;
  std::string ca_file;
  int connect_timeout_ms = 5000;
  int low_speed_seconds = 30;  // a request moving under 1 KiB/s this long is cut off
  int retries = 4;
};

// An S3 error answer, or a transport failure (status 0).
struct S3Error : std::runtime_error {
  S3Error(const std::string& what, long status, std::string code)
      : std::runtime_error(what), status(status), code(std::move(code)) {}
  long status;
  std::string code;  // S3's error code ("NoSuchKey", "NoSuchUpload", ...) or ""
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // unless a sink took it
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct Request {
  std::string method = "GET";
  std::string key;                                         // object key ("" : the bucket)
  std::vector<std::pair<std::string, std::string>> query;  // unencoded; sorted and encoded when sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;  // PUT/POST body
  // When set, a successful (2xx) body goes here as it arrives instead of
  // into Response::body; it returns false to stop (the request then fails).
  std::function<bool(const char*, size_t)> sink;
  // When set, called once with the status and headers of a 2xx answer
  // before its first byte goes to `sink` (or once it is complete, when it
  // has no body).
  std::function<void(const Response&)> on_headers;
  // Statuses that are answers, not errors (404 for a HEAD, say).
  std::vector<long> ok_statuses;
};

class Client {
 public:
  explicit Client(Options o);
  const Options& options() const { return o_; }
  // Sends `r` (retrying as above); returns any 2xx answer or one in
  // r.ok_statuses; throws S3Error for other answers.
  Response send(const Request& r) const;
  // A presigned URL for GET of `key`, valid `ttl_seconds` from now, on the
  // public endpoint.
  std::string presign_get(const std::string& key, int64_t ttl_seconds) const;
  // The S3 error code in an XML error body ("" when none).
  static std::string error_code(std::string_view xml);

 private:
  std::string url(const std::string& base, const std::string& key) const;
  // SigV4 "x-amz-date" and "Authorization" header lines for a request to
  // `full_url` (its query already canonical) with `headers` (x-amz-* and the
  // payload hash among them), all of which are signed.
  std::vector<std::string> sign(const std::string& method, const std::string& full_url,
                                const std::vector<std::pair<std::string, std::string>>& headers) const;
  Response once(const Request& r) const;
  Options o_;
};

// RFC 3986 percent-encoding as SigV4 wants it (unreserved kept; '/' kept
// when `keep_slash`).
std::string uri_encode(std::string_view s, bool keep_slash);

}  // namespace wharf::storage::s3
