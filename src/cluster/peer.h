// cluster/peer.h — requests between replicas (cluster: in the configuration).
//
// PeerAuth signs and checks them: a replica asking another adds
//   X-Wharf-Peer: <unix seconds>.<hex HMAC-SHA256(secret, "<ts>\n<METHOD>\n<target>\n<fields>")>
// where `fields` are the values of the headers the request relies on (for a
// squash relay: the RepoTags host). A signature older or newer than
// kMaxSkewSeconds is refused, so one seen on the wire is soon useless; the
// secret itself never travels. Immutable after construction: any thread.
//
// PeerFetch streams one GET from a peer (libcurl, on a thread of its own):
// the answer's status and headers, then its body in pieces, held in a
// bounded buffer the caller drains; a caller that stops draining stops the
// transfer (the peer's send timeout then applies there). The caller polls
// (poll()) and sleeps between polls until `wake` runs; wake runs on the
// fetch thread and must only post work elsewhere.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace wharf::cluster {

class PeerAuth {
 public:
  static constexpr const char* kHeader = "X-Wharf-Peer";
  static constexpr int64_t kMaxSkewSeconds = 60;
  // Reads the shared secret from `path` (at least 32 bytes once a trailing
  // newline is dropped). Throws std::runtime_error naming the file.
  static PeerAuth from_file(const std::string& path);
  explicit PeerAuth(std::string secret) : secret_(std::move(secret)) {}

  // The header value for a request made at `now` (unix seconds).
  std::string sign(std::string_view method, std::string_view target, std::string_view fields, int64_t now) const;
  // True when `value` is a signature of this request by a holder of the
  // secret made within kMaxSkewSeconds of `now`. Constant time in the MAC.
  bool verify(std::string_view value, std::string_view method, std::string_view target, std::string_view fields,
              int64_t now) const;

 private:
  std::string mac(std::string_view ts, std::string_view method, std::string_view target,
                  std::string_view fields) const;
  std::string secret_;
};

class PeerFetch {
 public:
  // Buffered body bytes at most; the transfer pauses beyond.
  static constexpr size_t kMaxBuffered = 8 << 20;

  // Starts GET `url` with `headers` ("Name: value" lines). Connecting gives
  // up after connect_timeout_ms; a transfer silent for `idle_timeout_s`
  // (no byte at all) is abandoned as failed.
  PeerFetch(std::string url, std::vector<std::string> headers, std::function<void()> wake,
            long connect_timeout_ms = 2000, long idle_timeout_s = 300);
  // Stops the transfer (the peer sees the connection close) and joins.
  ~PeerFetch();
  PeerFetch(const PeerFetch&) = delete;
  PeerFetch& operator=(const PeerFetch&) = delete;

  struct Head {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // names as sent, in order
  };
  // What is there now, taken by the caller: the head once (when it has
  // arrived), body bytes so far (moved out: `body` is appended to), and
  // whether the transfer has ended (`failed`: the error when it broke,
  // "" when the whole body arrived).
  struct Poll {
    std::optional<Head> head;
    bool ended = false;
    std::string failed;
  };
  Poll poll(std::string& body);

 private:
  void run(std::string url, std::vector<std::string> headers, long connect_timeout_ms, long idle_timeout_s);
  static size_t on_header(char* p, size_t size, size_t n, void* self);
  static size_t on_body(char* p, size_t size, size_t n, void* self);

  std::function<void()> wake_;
  std::mutex mu_;
  std::condition_variable room_;  // the fetch thread waits for the caller to drain
  // Guarded by mu_:
  Head head_;
  bool head_done_ = false, head_taken_ = false;
  std::string buf_;
  bool ended_ = false;
  std::string error_;
  bool cancelled_ = false;
  std::thread thread_;
};

}  // namespace wharf::cluster
