// http/message.h — the request/response values handlers see, and small
// parsing helpers (query strings, percent-decoding, Range). Registry-agnostic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wharf::http {

// Header list preserving order and repeats; names compare case-insensitively.
class Headers {
 public:
  void add(std::string name, std::string value) { h_.emplace_back(std::move(name), std::move(value)); }
  // Replaces every header of that name by one.
  void set(std::string_view name, std::string value);
  std::optional<std::string_view> get(std::string_view name) const;
  std::vector<std::string_view> all(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return h_; }

 private:
  std::vector<std::pair<std::string, std::string>> h_;
};

std::string percent_decode(std::string_view s, bool plus_is_space = false);
std::string percent_encode(std::string_view s);  // RFC 3986 unreserved kept

struct Request {
  std::string method;
  std::string target;  // as received: path plus "?query"
  std::string path;    // percent-decoded path
  std::string query;   // raw query string without '?'
  Headers headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  std::string remote_addr;
  bool tls = false;
  // The peer is a configured proxy: its X-Forwarded-* headers are believed.
  bool via_trusted_proxy = false;

  // The client's address: the last X-Forwarded-For hop when the peer is a
  // trusted proxy, else the peer's address.
  std::string client_addr() const;

  // First value of query parameter `key`, percent-decoded ('+' as space).
  std::optional<std::string> param(std::string_view key) const;
  std::vector<std::string> params(std::string_view key) const;
  bool is_head() const { return method == "HEAD"; }
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // Content-Length to announce when it is not body.size() (HEAD answers,
  // file-backed and streamed bodies).
  std::optional<uint64_t> content_length;
  // A HEAD answer for a body whose GET would be sent chunked (length unknown
  // until sent): says Transfer-Encoding: chunked instead of any length.
  bool length_unknown = false;
};

// A satisfiable byte range [first, last] of a representation.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t length() const { return last - first + 1; }
};
enum class RangeResult { None, Ok, Unsatisfiable };
// Parses a Range header value against a representation of `size` bytes:
// "bytes=a-b", "bytes=a-", "bytes=-n". A malformed value or several ranges
// is None (serve the whole representation, as RFC 9110 allows); a range that
// starts at or after the end, or ends before it starts, is Unsatisfiable.
RangeResult parse_range(std::string_view value, uint64_t size, ByteRange& out);

std::string_view reason_phrase(int status);

// Base URL ("http://host:port") clients reach us at: the configured external
// URL, else (from trusted proxies only) X-Forwarded-Proto/-Host, else the
// request's scheme and Host. Empty when the Host header is unusable.
std::string base_url(const Request& req, const std::string& external_url);

}  // namespace wharf::http
