// http/server.h — the HTTP/1.1 server: Boost.Asio/Beast with C++20
// coroutines, one coroutine per connection, keep-alive, streaming request
// bodies, sendfile for file-backed responses, optional TLS, and a plain-HTTP
// answer to a TLS ClientHello.
//
// Knows nothing of registry semantics: a single Handler gets an Exchange per
// request and must answer exactly once through one of the send* methods.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "http/message.h"

namespace wharf::http {

namespace asio = boost::asio;

// One request/response exchange. Not thread-safe; used by one coroutine.
// What read_body throws when the body's framing is malformed (a bad chunk
// size, ...): the client's fault, answered 400 by the server. A broken
// connection or a silent client is another boost::system::system_error.
class MalformedBody : public boost::system::system_error {
 public:
  using boost::system::system_error::system_error;
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;

  // Reads up to `buf.size()` bytes of the request body (chunked encoding
  // already removed); returns 0 at the end of the body. Throws on a broken
  // connection or when the client is silent longer than the body timeout,
  // MalformedBody on malformed framing.
  virtual asio::awaitable<size_t> read_body(std::span<char> buf) = 0;

  // Coroutine arguments are references to objects the caller names and keeps
  // alive across the co_await: GCC 12 mis-destroys temporaries and by-value
  // class arguments in co_await expressions, so never pass a temporary here.

  // Sends a whole response (its body is moved out). On HEAD the body is not sent; Content-Length is
  // response.content_length if set, else body.size().
  virtual asio::awaitable<void> send(Response& r) = 0;
  // Sends `length` bytes of file `fd` from `offset` after the headers
  // (sendfile on plain TCP). REQUIRES: head.content_length == length.
  virtual asio::awaitable<void> send_file(Response& head, int fd, uint64_t offset, uint64_t length) = 0;

  // Streaming: begin() sends the headers (chunked when no content_length),
  // write() sends body bytes, end() finishes. abort() drops the connection
  // without finishing, so the client sees a truncated body.
  virtual asio::awaitable<void> begin(Response& head) = 0;
  virtual asio::awaitable<void> write(std::span<const char> data) = 0;
  // Like write() with `length` bytes of file `fd` from `offset` (sendfile on
  // plain TCP when the stream has a Content-Length).
  virtual asio::awaitable<void> write_file(int fd, uint64_t offset, uint64_t length) = 0;
  virtual asio::awaitable<void> end() = 0;

  // True once a response has started.
  virtual bool responded() const = 0;

  // Added to every response of this exchange (e.g. the API version header).
  Headers common_headers;
  // Label for metrics and logs ("manifest_get"); set by the handler.
  std::string route = "other";
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int status = 0;
};

using Handler = std::function<asio::awaitable<void>(Exchange&)>;

struct ServerOptions {
  std::string listen = "127.0.0.1:5000";
  std::string tls_cert, tls_key;  // both set: TLS
  int threads = 2;
  // Time to receive a request's headers once its first byte came.
  std::chrono::seconds header_timeout{30};
  // Longest silence while a request body is read (per read, not per body).
  std::chrono::seconds body_timeout{120};
  // Longest a write may wait for the client to take bytes (per write, as
  // nginx's send_timeout): a slow but live client gets its whole body however
  // long it takes; one that stops reading is dropped after this.
  std::chrono::seconds send_timeout{60};
  // A keep-alive connection with no request in progress is closed after this.
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds drain_timeout{30};
  // Open connections in all, and from one peer address (trusted proxies are
  // exempt from the second: behind a load balancer that cap is the proxy's).
  // Beyond them a connection gets one 503 (total) or 429 (per client)
  // answer (error_response) and is closed. 0: no limit.
  size_t max_connections = 0;
  size_t max_connections_per_client = 0;
  // Peer addresses whose X-Forwarded-For/-Proto/-Host are believed.
  std::vector<std::string> trusted_proxies;
  // The response for what the server answers itself: a request no handler
  // sees (bad framing: 400/501; over a connection limit: 429/503) or a
  // handler that failed before responding (500). The server knows nothing of
  // the body's format; unset: a plain-text body.
  std::function<Response(int status, std::string_view message)> error_response;
  // Called after every exchange, from the connection's thread.
  std::function<void(const Exchange&, std::chrono::steady_clock::duration)> on_complete;
};

class Server {
 public:
  Server(ServerOptions opts, Handler handler);
  ~Server();
  // Binds the listener; throws with a clear message when the address is taken.
  void bind();
  // The actual bound port (useful with port 0).
  unsigned short port() const;
  // Serves until SIGTERM or SIGINT, then stops accepting and lets requests in
  // flight finish (up to drain_timeout) before returning.
  void run();

  struct Impl;  // public only so the connection code in server.cc can see it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wharf::http
