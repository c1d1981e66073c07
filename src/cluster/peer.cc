#include "cluster/peer.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace wharf::cluster {

PeerAuth PeerAuth::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cluster.secret_file: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() < 32)
    throw std::runtime_error("cluster.secret_file: " + path + " holds " + std::to_string(s.size()) +
                             " bytes; the shared secret needs at least 32 (e.g. openssl rand -hex 32)");
  return PeerAuth(std::move(s));
}

std::string PeerAuth::mac(std::string_view ts, std::string_view method, std::string_view target,
                          std::string_view fields) const {
  std::string msg;
  msg.append(ts).append("\n").append(method).append("\n").append(target).append("\n").append(fields);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", out[i]);
    hex += b;
  }
  return hex;
}

std::string PeerAuth::sign(std::string_view method, std::string_view target, std::string_view fields,
                           int64_t now) const {
  std::string ts = std::to_string(now);
  return ts + "." + mac(ts, method, target, fields);
}

bool PeerAuth::verify(std::string_view value, std::string_view method, std::string_view target,
                      std::string_view fields, int64_t now) const {
  auto dot = value.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 19) return false;
  std::string_view ts = value.substr(0, dot);
  int64_t t = 0;
  for (char c : ts) {
    if (c < '0' || c > '9') return false;
    t = t * 10 + (c - '0');
  }
  if (t > now + kMaxSkewSeconds || t < now - kMaxSkewSeconds) return false;
  std::string want = mac(ts, method, target, fields);
  std::string_view got = value.substr(dot + 1);
  return got.size() == want.size() && CRYPTO_memcmp(got.data(), want.data(), want.size()) == 0;
}

PeerFetch::PeerFetch(std::string url, std::vector<std::string> headers, std::function<void()> wake,
                     long connect_timeout_ms, long idle_timeout_s)
    : wake_(std::move(wake)) {
  thread_ = std::thread([this, url = std::move(url), headers = std::move(headers), connect_timeout_ms,
                         idle_timeout_s]() mutable { run(std::move(url), std::move(headers), connect_timeout_ms, idle_timeout_s); });
}

PeerFetch::~PeerFetch() {
  {
    std::lock_guard lk(mu_);
    cancelled_ = true;
  }
  room_.notify_all();
  thread_.join();
}

PeerFetch::Poll PeerFetch::poll(std::string& body) {
  Poll p;
  {
    std::lock_guard lk(mu_);
    if (head_done_ && !head_taken_) {
      p.head = head_;
      head_taken_ = true;
    }
    if (head_taken_) {
      body.append(buf_);
      buf_.clear();
    }
    if (ended_ && buf_.empty() && head_taken_) {
      p.ended = true;
      p.failed = error_;
    } else if (ended_ && !head_done_) {  // broke before any answer
      p.ended = true;
      p.failed = error_.empty() ? "no answer" : error_;
    }
  }
  room_.notify_all();
  return p;
}

size_t PeerFetch::on_header(char* p, size_t size, size_t n, void* self_) {
  auto* self = static_cast<PeerFetch*>(self_);
  std::string_view line(p, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  bool wake = false;
  {
    std::lock_guard lk(self->mu_);
    if (self->cancelled_) return 0;
    if (line.starts_with("HTTP/")) {  // a status line (a new answer: forget an interim one's headers)
      self->head_ = {};
      auto sp = line.find(' ');
      if (sp != std::string_view::npos) self->head_.status = std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
    } else if (line.empty()) {
      if (self->head_.status >= 200) {
        self->head_done_ = true;
        wake = true;
      }
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      self->head_.headers.emplace_back(std::string(line.substr(0, colon)), std::string(v));
    }
  }
  if (wake) self->wake_();
  return size * n;
}

size_t PeerFetch::on_body(char* p, size_t size, size_t n, void* self_) {
  auto* self = static_cast<PeerFetch*>(self_);
  size_t len = size * n;
  bool was_empty;
  {
    std::unique_lock lk(self->mu_);
    self->room_.wait(lk, [&] { return self->cancelled_ || self->buf_.size() < kMaxBuffered; });
    if (self->cancelled_) return 0;  // ends the transfer
    was_empty = self->buf_.empty();
    self->buf_.append(p, len);
  }
  if (was_empty) self->wake_();
  return len;
}

void PeerFetch::run(std::string url, std::vector<std::string> headers, long connect_timeout_ms,
                    long idle_timeout_s) {
  std::string error;
  CURL* c = curl_easy_init();
  curl_slist* hl = nullptr;
  if (!c) {
    error = "cannot start a request";
  } else {
    for (auto& h : headers) hl = curl_slist_append(hl, h.c_str());
    hl = curl_slist_append(hl, "Expect:");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, idle_timeout_s);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
    // The body is passed on as it came (gzip stays gzip); no decoding here.
    curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(c, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &PeerFetch::on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &PeerFetch::on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
  }
  {
    std::lock_guard lk(mu_);
    ended_ = true;
    error_ = error;
  }
  wake_();
}

}  // namespace wharf::cluster
