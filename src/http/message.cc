#include "http/message.h"

#include <charconv>
#include <strings.h>

namespace wharf::http {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

void Headers::set(std::string_view name, std::string value) {
  std::erase_if(h_, [&](auto& kv) { return iequals(kv.first, name); });
  h_.emplace_back(std::string(name), std::move(value));
}
std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (auto& [k, v] : h_)
    if (iequals(k, name)) return std::string_view(v);
  return std::nullopt;
}
std::vector<std::string_view> Headers::all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (auto& [k, v] : h_)
    if (iequals(k, name)) out.emplace_back(v);
  return out;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
      if (a >= 0 && b >= 0) {
        out += static_cast<char>(a * 16 + b);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && s[i] == '+') ? ' ' : s[i];
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::vector<std::string> Request::params(std::string_view key) const {
  std::vector<std::string> out;
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    auto eq = part.find('=');
    auto k = percent_decode(part.substr(0, eq), true);
    if (k == key) out.push_back(eq == std::string_view::npos ? "" : percent_decode(part.substr(eq + 1), true));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}
std::optional<std::string> Request::param(std::string_view key) const {
  auto v = params(key);
  if (v.empty()) return std::nullopt;
  return v.front();
}

RangeResult parse_range(std::string_view v, uint64_t size, ByteRange& out) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (!v.starts_with("bytes=")) return RangeResult::None;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return RangeResult::None;
  auto dash = v.find('-');
  if (dash == std::string_view::npos) return RangeResult::None;
  auto a = v.substr(0, dash), b = v.substr(dash + 1);
  uint64_t first, last;
  if (a.empty()) {  // suffix range: last n bytes
    uint64_t n;
    if (!parse_u64(b, n)) return RangeResult::None;
    if (n == 0 || size == 0) return RangeResult::Unsatisfiable;
    first = n >= size ? 0 : size - n;
    last = size - 1;
  } else {
    if (!parse_u64(a, first)) return RangeResult::None;
    if (b.empty()) {
      last = size ? size - 1 : 0;
    } else {
      if (!parse_u64(b, last)) return RangeResult::None;
      // last before first: RFC 9110 §14.2 lets a server ignore it, but the
      // distribution spec's conformance tests read a 200 as "ranges
      // unsupported": answer 416.
      if (last < first) return RangeResult::Unsatisfiable;
      if (last >= size) last = size ? size - 1 : 0;
    }
    if (first >= size) return RangeResult::Unsatisfiable;
  }
  out = {first, last};
  return RangeResult::Ok;
}

std::string_view reason_phrase(int s) {
  switch (s) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return "Status";
}

std::string base_url(const Request& req, const std::string& external_url) {
  if (!external_url.empty()) {
    std::string u = external_url;
    while (!u.empty() && u.back() == '/') u.pop_back();
    return u;
  }
  std::string scheme = req.tls ? "https" : "http";
  auto p = req.via_trusted_proxy ? req.headers.get("X-Forwarded-Proto") : std::nullopt;
  if (p) {
    auto v = std::string(p->substr(0, p->find(',')));
    if (v == "http" || v == "https") scheme = v;
  }
  std::string host;
  auto fh = req.via_trusted_proxy ? req.headers.get("X-Forwarded-Host") : std::nullopt;
  if (fh)
    host = std::string(fh->substr(0, fh->find(',')));
  else if (auto h2 = req.headers.get("Host"))
    host = std::string(*h2);
  while (!host.empty() && host.front() == ' ') host.erase(0, 1);
  if (host.empty() || host.find_first_of(" /\\\"<>") != std::string::npos) return "";  // relative Locations
  return scheme + "://" + host;
}

std::string Request::client_addr() const {
  if (via_trusted_proxy)
    if (auto f = headers.get("X-Forwarded-For")) {
      auto v = *f;
      auto comma = v.rfind(',');
      if (comma != std::string_view::npos) v = v.substr(comma + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      if (!v.empty()) return std::string(v);
    }
  return remote_addr;
}

}  // namespace wharf::http
