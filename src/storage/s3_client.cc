#include "storage/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <pugixml.hpp>
#include <random>
#include <thread>

#include "core/metrics.h"

namespace wharf::storage::s3 {

namespace {

// Bumped in a child after fork(): handles (and their connections) inherited
// from the parent are abandoned there, never used by both processes.
std::atomic<int> fork_generation{0};

struct Global {
  Global() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); });
  }
};

// One easy handle per thread, reused: libcurl keeps its connections alive.
CURL* thread_handle() {
  static Global g;
  struct Handle {
    CURL* h = curl_easy_init();
    int generation = fork_generation.load();
    ~Handle() {
      if (generation == fork_generation.load()) curl_easy_cleanup(h);
    }
  };
  thread_local Handle handle;
  if (handle.generation != fork_generation.load()) {  // inherited: leave the parent's sockets alone
    handle.h = curl_easy_init();
    handle.generation = fork_generation.load();
  }
  curl_easy_reset(handle.h);
  return handle.h;
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string sha256_hex(std::string_view s) {
  unsigned char out[32];
  EVP_Digest(s.data(), s.size(), out, nullptr, EVP_sha256(), nullptr);
  return hex(out, 32);
}

std::string canonical_query(std::vector<std::pair<std::string, std::string>> q) {
  for (auto& [k, v] : q) {
    k = uri_encode(k, false);
    v = uri_encode(v, false);
  }
  std::sort(q.begin(), q.end());
  std::string out;
  for (const auto& [k, v] : q) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

bool transient(long status, const std::string& code) {
  return status == 0 || status >= 500 || code == "SlowDown" || code == "RequestTimeout";
}

void backoff(int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  int ms = std::min(2000, 50 << attempt);
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(ms / 2, ms)(rng)));
}

// The S3 API operation a request is, for /metrics.
std::string operation(const Request& r) {
  auto has = [&](const char* k) {
    for (const auto& [key, v] : r.query)
      if (key == k) return true;
    return false;
  };
  bool copy = false;
  for (const auto& [k, v] : r.headers) copy = copy || k == "x-amz-copy-source";
  if (has("uploads")) return r.method == "POST" ? "CreateMultipartUpload" : "ListMultipartUploads";
  if (has("partNumber")) return copy ? "UploadPartCopy" : "UploadPart";
  if (has("uploadId")) return r.method == "POST" ? "CompleteMultipartUpload" : "AbortMultipartUpload";
  if (has("list-type")) return "ListObjectsV2";
  if (has("lifecycle")) return "PutBucketLifecycle";
  if (r.key.empty()) return r.method == "HEAD" ? "HeadBucket" : r.method == "PUT" ? "CreateBucket" : "Bucket";
  if (copy) return "CopyObject";
  if (r.method == "GET") return "GetObject";
  if (r.method == "HEAD") return "HeadObject";
  if (r.method == "DELETE") return "DeleteObject";
  return "PutObject";
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* d = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += d[c >> 4];
      out += d[c & 15];
    }
  }
  return out;
}

Client::Client(Options o) : o_(std::move(o)) {
  while (!o_.endpoint.empty() && o_.endpoint.back() == '/') o_.endpoint.pop_back();
  while (!o_.public_endpoint.empty() && o_.public_endpoint.back() == '/') o_.public_endpoint.pop_back();
  if (o_.public_endpoint.empty()) o_.public_endpoint = o_.endpoint;
}

std::string Client::url(const std::string& base, const std::string& key) const {
  if (o_.path_style)
    return base + "/" + uri_encode(o_.bucket, false) + (key.empty() ? "/" : "/" + uri_encode(key, true));
  auto scheme_end = base.find("://");
  std::string host_base = scheme_end == std::string::npos
                              ? base
                              : base.substr(0, scheme_end + 3) + o_.bucket + "." + base.substr(scheme_end + 3);
  return host_base + "/" + uri_encode(key, true);
}

std::string Client::error_code(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return "";
  return doc.child("Error").child_value("Code");
}

Response Client::send(const Request& r) const {
  const std::string op = operation(r);
  auto& m = core::Metrics::global();
  for (int attempt = 0;; ++attempt) {
    bool streamed = false;
    Request copy = r;
    if (r.sink)
      copy.sink = [&](const char* p, size_t n) {
        streamed = true;
        return r.sink(p, n);
      };
    auto t0 = std::chrono::steady_clock::now();
    auto account = [&](const char* outcome) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
      m.add("wharf_backend_requests_total", 1, "backend=\"s3\",operation=\"" + op + "\",outcome=\"" + outcome + "\"");
      m.add("wharf_backend_request_microseconds_total", static_cast<uint64_t>(us),
            "backend=\"s3\",operation=\"" + op + "\"");
    };
    try {
      auto resp = once(copy);
      account("ok");
      return resp;
    } catch (const S3Error& e) {
      account(e.code == "Stopped"  ? "stopped_by_reader"
              : e.status == 0     ? "transport_error"
              : e.status >= 500   ? "server_error"
                                  : "client_error");
      if (!transient(e.status, e.code) || streamed || attempt >= o_.retries) throw;
      backoff(attempt);
    }
  }
}

Response Client::once(const Request& r) const {
  CURL* h = thread_handle();
  std::string q = canonical_query(r.query);
  std::string u = url(o_.endpoint, r.key) + (q.empty() ? "" : "?" + q);
  Response resp;
  struct Ctx {
    Response* resp;
    const Request* req;
    CURL* h;
    bool stopped = false;
    bool told = false;  // on_headers was called
  } ctx{&resp, &r, h};
  curl_easy_setopt(h, CURLOPT_URL, u.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o_.low_speed_seconds));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);  // fewer, larger pieces to a sink (16 KiB by default)
  if (!o_.tls_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!o_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, o_.ca_file.c_str());
  // The payload is not hashed into the signature (TLS or loopback carries it;
  // hashing every pushed byte a second time would cost a core).
  std::vector<std::pair<std::string, std::string>> signed_hdrs = {{"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}};
  signed_hdrs.insert(signed_hdrs.end(), r.headers.begin(), r.headers.end());
  // curl orders canonical headers by "name:value": wrong when a name is a
  // prefix of another (see s3_client.h). Those requests are signed here.
  bool curl_signs = true;
  for (const auto& [a, va] : r.headers)
    for (const auto& [b, vb] : r.headers)
      if (a != b && b.size() > a.size() && b.compare(0, a.size(), a) == 0) curl_signs = false;
  std::string sigv4 = "aws:amz:" + o_.region + ":s3";
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, curl_signs ? sigv4.c_str() : nullptr);
  curl_easy_setopt(h, CURLOPT_USERNAME, curl_signs ? o_.access_key.c_str() : nullptr);
  curl_easy_setopt(h, CURLOPT_PASSWORD, curl_signs ? o_.secret_key.c_str() : nullptr);

  curl_slist* hdrs = nullptr;
  // (No "Expect:" to suppress 100-continue: curl 7.88 signs that empty
  // header without sending it, and the signature no longer matches.)
  for (const auto& [k, v] : signed_hdrs) hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
  if (!curl_signs)
    for (const auto& line : sign(r.method, u, signed_hdrs)) hdrs = curl_slist_append(hdrs, line.c_str());
  if (r.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (r.method == "PUT" || r.method == "POST") {
    hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.empty() ? "" : r.body.data());
  } else if (r.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(
      h, CURLOPT_HEADERFUNCTION, +[](char* p, size_t sz, size_t n, void* ud) -> size_t {
        auto* c = static_cast<Ctx*>(ud);
        std::string_view line(p, sz * n);
        if (line.rfind("HTTP/", 0) == 0) c->resp->headers.clear();  // a new response (after 100)
        auto colon = line.find(':');
        if (colon != std::string_view::npos) {
          std::string k(line.substr(0, colon));
          for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          std::string_view v = line.substr(colon + 1);
          while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
          while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
          c->resp->headers[k] = std::string(v);
        }
        return sz * n;
      });
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* p, size_t sz, size_t n, void* ud) -> size_t {
        auto* c = static_cast<Ctx*>(ud);
        long status = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
        if (c->req->sink && status >= 200 && status < 300) {
          if (c->req->on_headers && !c->told) {
            c->told = true;
            c->resp->status = status;
            c->req->on_headers(*c->resp);
          }
          if (!c->req->sink(p, sz * n)) {
            c->stopped = true;
            return 0;
          }
        } else {
          c->resp->body.append(p, sz * n);
        }
        return sz * n;
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  std::string what = "s3: " + r.method + " " + (r.key.empty() ? o_.bucket : r.key);
  if (rc != CURLE_OK) {
    if (ctx.stopped) throw S3Error(what + ": stopped by the reader", 0, "Stopped");
    throw S3Error(what + ": " + curl_easy_strerror(rc) + " (" + o_.endpoint + ")", 0, "");
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  if (resp.status >= 200 && resp.status < 300) {
    if (r.on_headers && !ctx.told) r.on_headers(resp);
    return resp;
  }
  if (std::find(r.ok_statuses.begin(), r.ok_statuses.end(), resp.status) != r.ok_statuses.end()) return resp;
  std::string code = error_code(resp.body);
  if (code.empty() && resp.status == 404) code = r.method == "HEAD" ? "NotFound" : "NoSuchKey";
  pugi::xml_document doc;
  std::string msg;
  if (doc.load_buffer(resp.body.data(), resp.body.size())) msg = doc.child("Error").child_value("Message");
  throw S3Error(
      what + ": " + std::to_string(resp.status) + (code.empty() ? "" : " " + code) + (msg.empty() ? "" : ": " + msg),
      resp.status, code);
}

namespace {

// The two timestamps SigV4 uses, for now.
struct SigTime {
  std::string amzdate;  // 20261205T035135Z
  std::string date;     // 20261205
};
SigTime sig_time_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char amzdate[32], date[16];
  std::strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
  std::strftime(date, sizeof date, "%Y%m%d", &tm);
  return {amzdate, date};
}

// scheme://host/path?query, split as SigV4 signs it.
struct UrlParts {
  std::string host, path, query;
};
UrlParts split_url(const std::string& full) {
  auto scheme_end = full.find("://");
  auto path_start = full.find('/', scheme_end + 3);
  auto query_start = full.find('?', path_start);
  UrlParts u;
  u.host = full.substr(scheme_end + 3, path_start - scheme_end - 3);
  u.path = full.substr(path_start, query_start == std::string::npos ? std::string::npos : query_start - path_start);
  if (query_start != std::string::npos) u.query = full.substr(query_start + 1);
  return u;
}

std::string sig_scope(const SigTime& t, const std::string& region) {
  return t.date + "/" + region + "/s3/aws4_request";
}

// The hex signature of a canonical request (the SigV4 string to sign, HMAC'd
// with the key derived from the secret, the date, the region and "s3").
std::string signature(const std::string& secret, const std::string& region, const SigTime& t,
                      const std::string& canonical_request) {
  std::string sts = "AWS4-HMAC-SHA256\n" + t.amzdate + "\n" + sig_scope(t, region) + "\n" + sha256_hex(canonical_request);
  std::string k = hmac("AWS4" + secret, t.date);
  k = hmac(k, region);
  k = hmac(k, "s3");
  k = hmac(k, "aws4_request");
  std::string sig = hmac(k, sts);
  return hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

}  // namespace

std::vector<std::string> Client::sign(const std::string& method, const std::string& full_url,
                                      const std::vector<std::pair<std::string, std::string>>& headers) const {
  SigTime t = sig_time_now();
  UrlParts u = split_url(full_url);
  std::vector<std::pair<std::string, std::string>> canon = {{"host", u.host}, {"x-amz-date", t.amzdate}};
  for (const auto& [k, v] : headers) {
    std::string name = k;
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    canon.emplace_back(name, v);
  }
  std::sort(canon.begin(), canon.end());  // by name (names are distinct), then value
  std::string canon_headers, names, payload = "UNSIGNED-PAYLOAD";
  for (const auto& [k, v] : canon) {
    canon_headers += k + ":" + v + "\n";
    names += (names.empty() ? "" : ";") + k;
    if (k == "x-amz-content-sha256") payload = v;
  }
  std::string creq = method + "\n" + u.path + "\n" + u.query + "\n" + canon_headers + "\n" + names + "\n" + payload;
  return {"x-amz-date: " + t.amzdate,
          "Authorization: AWS4-HMAC-SHA256 Credential=" + o_.access_key + "/" + sig_scope(t, o_.region) +
              ", SignedHeaders=" + names + ", Signature=" + signature(o_.secret_key, o_.region, t, creq)};
}

std::string Client::presign_get(const std::string& key, int64_t ttl_seconds) const {
  SigTime t = sig_time_now();
  std::string full = url(o_.public_endpoint, key);
  UrlParts u = split_url(full);
  std::vector<std::pair<std::string, std::string>> q = {
      {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
      {"X-Amz-Credential", o_.access_key + "/" + sig_scope(t, o_.region)},
      {"X-Amz-Date", t.amzdate},
      {"X-Amz-Expires", std::to_string(ttl_seconds)},
      {"X-Amz-SignedHeaders", "host"},
  };
  std::string cq = canonical_query(q);
  std::string creq = "GET\n" + u.path + "\n" + cq + "\nhost:" + u.host + "\n\nhost\nUNSIGNED-PAYLOAD";
  return full + "?" + cq + "&X-Amz-Signature=" + signature(o_.secret_key, o_.region, t, creq);
}

}  // namespace wharf::storage::s3
