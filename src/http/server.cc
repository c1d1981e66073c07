#include "http/server.h"

#include <sys/resource.h>
#include <sys/sendfile.h>

#include <csignal>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <atomic>
#include <charconv>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace wharf::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

// Connections are tracked so SIGTERM can close the idle ones at once.
class Tracked {
 public:
  virtual ~Tracked() = default;
  virtual void close_if_idle() = 0;
};

tcp::socket& raw_socket(beast::tcp_stream& s) { return s.socket(); }
tcp::socket& raw_socket(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer().socket(); }
beast::tcp_stream& tcp_layer(beast::tcp_stream& s) { return s; }
beast::tcp_stream& tcp_layer(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer(); }

std::string hex(uint64_t v) {
  char b[32];
  auto [p, ec] = std::to_chars(b, b + sizeof b, v, 16);
  return std::string(b, p);
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  Handler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<ssl::context> tls;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::set<Tracked*> conns;
  std::optional<asio::steady_timer> drain_timer;

  // Connection accounting (under mu): open connections in all and per peer
  // address, and connections being turned away (each gets one short answer;
  // beyond kMaxRejecting they are closed at once).
  size_t open_total = 0;
  size_t rejecting = 0;
  std::unordered_map<std::string, size_t> open_per_addr;
  static constexpr size_t kMaxRejecting = 256;

  Impl(ServerOptions o, Handler h) : opts(std::move(o)), handler(std::move(h)) {}

  bool trusted(const std::string& addr) const {
    for (auto& t : opts.trusted_proxies)
      if (t == addr) return true;
    return false;
  }
  // 0: admitted (counted until release()); 429/503: to be turned away with
  // that status (counted in `rejecting` until unreject()); -1: close at once.
  int admit(const std::string& addr) {
    std::lock_guard lk(mu);
    int verdict = 0;
    if (opts.max_connections && open_total >= opts.max_connections)
      verdict = 503;
    else if (opts.max_connections_per_client && !trusted(addr) && open_per_addr[addr] >= opts.max_connections_per_client)
      verdict = 429;
    if (verdict) {
      if (open_per_addr[addr] == 0) open_per_addr.erase(addr);
      if (rejecting >= kMaxRejecting) return -1;
      ++rejecting;
      return verdict;
    }
    ++open_total;
    ++open_per_addr[addr];
    return 0;
  }
  void release(const std::string& addr) {
    std::lock_guard lk(mu);
    --open_total;
    auto it = open_per_addr.find(addr);
    if (it != open_per_addr.end() && --it->second == 0) open_per_addr.erase(it);
  }
  void unreject() {
    std::lock_guard lk(mu);
    --rejecting;
  }

  void add(Tracked* c) {
    std::lock_guard lk(mu);
    conns.insert(c);
  }
  void remove(Tracked* c) {
    std::lock_guard lk(mu);
    conns.erase(c);
    if (stopping && conns.empty() && drain_timer) asio::post(ioc, [this] { drain_timer->cancel(); });
  }
  asio::awaitable<void> accept_loop();
  // `reject`: admit()'s verdict, taken at accept time so connections are
  // admitted in the order they arrived.
  asio::awaitable<void> serve_socket(tcp::socket sock, std::string addr, int reject);
};

namespace {

template <class Stream>
class Conn final : public Exchange, public Tracked {
 public:
  // `reject` (429 or 503): the connection is over a limit; its first
  // request gets that answer and the connection is closed.
  Conn(Server::Impl& srv, Stream stream, bool tls, int reject)
      : srv_(srv), stream_(std::move(stream)), tls_(tls), reject_(reject), send_timer_(tcp_layer(stream_).get_executor()) {
    srv_.add(this);
  }
  ~Conn() override { srv_.remove(this); }

  void close_if_idle() override {
    asio::post(tcp_layer(stream_).get_executor(), [this] {
      if (!in_request_) {
        beast::error_code ec;
        raw_socket(stream_).shutdown(tcp::socket::shutdown_both, ec);
        tcp_layer(stream_).cancel();
      }
    });
  }

  asio::awaitable<void> run() {
    try {
      co_await loop();
    } catch (const std::exception&) {
      // broken connection: nothing more to say to this client
    }
    beast::error_code ec;
    raw_socket(stream_).close(ec);
  }

  const Request& request() const override { return req_; }
  bool responded() const override { return responded_; }

  asio::awaitable<size_t> read_body(std::span<char> buf) override {
    if (!parser_ || body_done() || buf.empty()) co_return 0;
    if (expect_continue_) {
      expect_continue_ = false;
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await send_all(asio::buffer(kContinue, sizeof kContinue - 1));
    }
    if (direct_) {
      // Content-Length body: what came with the headers first, then straight
      // from the socket into the caller's buffer (Beast's parser would read
      // it 512 bytes at a time and copy it once more).
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), body_left_));
      size_t n;
      if (inbuf_.size()) {
        n = std::min(want, inbuf_.size());
        std::memcpy(buf.data(), inbuf_.data().data(), n);
        inbuf_.consume(n);
      } else {
        tcp_layer(stream_).expires_after(srv_.opts.body_timeout);
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
          // Wake up for a large piece, not for every segment (fewer trips
          // through the reactor and fewer thread switches per MiB).
          int lowat = static_cast<int>(std::min<size_t>(want, kBodyLowat));
          if (lowat != lowat_) {
            ::setsockopt(raw_socket(stream_).native_handle(), SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
            lowat_ = lowat;
          }
        }
        auto [ec, got] = co_await stream_.async_read_some(asio::buffer(buf.data(), want), kTuple);
        tcp_layer(stream_).expires_never();
        if (ec) throw beast::system_error(ec);
        n = got;
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
          // Take whatever else the socket already holds without another trip
          // through the reactor (one coroutine resume per ~64 KiB otherwise).
          auto& sock = raw_socket(stream_);
          sock.non_blocking(true);
          while (n < want) {
            beast::error_code rec;
            size_t k = sock.read_some(asio::buffer(buf.data() + n, want - n), rec);
            if (rec || !k) break;  // would_block: wait in the reactor next time
            n += k;
          }
        }
      }
      body_left_ -= n;
      bytes_in += n;
      if (body_left_ == 0) reset_lowat();  // the next request's headers are small
      co_return n;
    }
    inbuf_.reserve(256 * 1024);  // chunked bodies: read in large pieces
    for (;;) {
      parser_->get().body().data = buf.data();
      parser_->get().body().size = buf.size();
      tcp_layer(stream_).expires_after(srv_.opts.body_timeout);
      auto [ec, n] = co_await bhttp::async_read_some(stream_, inbuf_, *parser_, kTuple);
      tcp_layer(stream_).expires_never();
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec && ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category()) {
        bad_body_ = true;  // malformed framing (chunk sizes, ...): the client's fault, a 400
        throw MalformedBody(ec);
      }
      if (ec) throw beast::system_error(ec);
      size_t got = buf.size() - parser_->get().body().size;
      bytes_in += got;
      if (got > 0 || parser_->is_done()) co_return got;
    }
  }

  bool body_done() const { return direct_ ? body_left_ == 0 : parser_->is_done(); }

  asio::awaitable<void> send(Response& r) override {
    uint64_t len = r.content_length.value_or(r.body.size());
    std::string head = header_block(r, len, false);
    if (req_.is_head() || r.status == 204 || r.status == 304 || r.body.empty()) {
      co_await write_raw(head, {});
    } else {
      co_await write_raw(head, r.body);
    }
  }

  asio::awaitable<void> send_file(Response& r, int fd, uint64_t offset, uint64_t length) override {
    r.content_length = length;
    std::string head = header_block(r, length, false);
    co_await write_raw(head, {});
    if (req_.is_head()) co_return;
    co_await file_body(fd, offset, length);
  }

  asio::awaitable<void> write_file(int fd, uint64_t offset, uint64_t length) override {
    if (!streaming_ || !length) co_return;
    if (chunked_out_) {
      std::string pre = hex(length) + "\r\n";
      co_await send_all(asio::buffer(pre));
      co_await file_body(fd, offset, length);
      co_await send_all(asio::buffer("\r\n", 2));
    } else {
      co_await file_body(fd, offset, length);
    }
  }

  asio::awaitable<void> begin(Response& r) override {
    chunked_out_ = !r.content_length.has_value();
    std::string head = header_block(r, r.content_length.value_or(0), chunked_out_);
    co_await write_raw(head, {});
    streaming_ = !req_.is_head();
  }
  asio::awaitable<void> write(std::span<const char> data) override {
    if (!streaming_ || data.empty()) co_return;
    if (chunked_out_) {
      std::string pre = hex(data.size()) + "\r\n";
      std::array<asio::const_buffer, 3> bufs{asio::buffer(pre), asio::buffer(data.data(), data.size()),
                                             asio::buffer("\r\n", 2)};
      co_await send_all(bufs);
    } else {
      co_await send_all(asio::buffer(data.data(), data.size()));
    }
    bytes_out += data.size();
  }
  asio::awaitable<void> end() override {
    if (streaming_ && chunked_out_) co_await send_all(asio::buffer("0\r\n\r\n", 5));
    streaming_ = false;
  }

 private:
  // Answers a request the handler never sees (bad framing, over a limit)
  // and ends the connection.
  asio::awaitable<void> refuse(int status, std::string_view message) {
    keep_alive_ = false;
    Response r = own_response(status, message);
    co_await send(r);
    co_await linger();
  }

  // ServerOptions::error_response, or a plain-text body.
  Response own_response(int status, std::string_view message) {
    if (srv_.opts.error_response) return srv_.opts.error_response(status, message);
    Response r;
    r.status = status;
    r.headers.add("Content-Type", "text/plain; charset=utf-8");
    if (status == 429 || status == 503) r.headers.add("Retry-After", "1");
    r.body = std::string(message) + "\n";
    return r;
  }

  asio::awaitable<void> loop() {
    for (bool first = true;; first = false) {
      parser_.emplace();
      parser_->body_limit(boost::none);
      parser_->header_limit(64 * 1024);
      in_request_ = false;
      if (srv_.stopping) co_return;
      reset_lowat();  // also after a body the handler left unread
      if (!first && inbuf_.size() == 0) {
        // Keep-alive: wait for the next request's first byte up to the idle timeout.
        tcp_layer(stream_).expires_after(srv_.opts.idle_timeout);
        auto [ec, n] = co_await stream_.async_read_some(inbuf_.prepare(16 * 1024), kTuple);
        if (ec) co_return;
        inbuf_.commit(n);
      }
      tcp_layer(stream_).expires_after(reject_ ? std::chrono::seconds(2) : srv_.opts.header_timeout);
      beast::error_code ec = co_await read_header();
      tcp_layer(stream_).expires_never();  // writes and body reads set their own, per operation
      if (ec) {
        if (ec == bhttp::error::header_limit) {
          Response r;
          r.status = 431;
          keep_alive_ = false;
          co_await send(r);
        } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
                   ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
          co_await refuse(400, std::string("malformed request: ") + ec.message());
        }
        co_return;
      }
      in_request_ = true;
      auto started = std::chrono::steady_clock::now();
      prepare_request();
      if (reject_ == 503) {
        co_return co_await refuse(503, "the server has too many open connections; retry later");
      } else if (reject_) {
        co_return co_await refuse(429, "too many open connections from " + req_.remote_addr + " (limit " +
                                      std::to_string(srv_.opts.max_connections_per_client) + ")");
      }
      if (framing_status_) co_return co_await refuse(framing_status_, framing_message_);
      bool failed = false;
      try {
        co_await srv_.handler(*this);
      } catch (const std::exception&) {
        if (responded_) throw;  // mid-body failure: drop the connection, truncating the body
        failed = true;
      }
      if (failed && bad_body_) {
        co_return co_await refuse(400, "malformed chunked request body");
      }
      if (failed) {
        keep_alive_ = false;
        Response r = own_response(500, "internal server error");
        co_await send(r);
      }
      if (!responded_) {
        Response r;
        r.status = 500;
        co_await send(r);
      }
      if (streaming_) throw std::runtime_error("handler left a stream open");
      if (srv_.opts.on_complete) srv_.opts.on_complete(*this, std::chrono::steady_clock::now() - started);
      if (!keep_alive_ || srv_.stopping) {
        co_await linger();
        co_return;
      }
      if (!body_done() && !co_await drain(8 << 20)) {
        co_await linger();
        co_return;
      }
    }
  }

  void prepare_request() {
    auto& m = parser_->get();
    req_ = Request{};
    req_.method = std::string(m.method_string());
    req_.target = std::string(m.target());
    auto q = req_.target.find('?');
    req_.path = percent_decode(std::string_view(req_.target).substr(0, q));
    if (q != std::string::npos) req_.query = req_.target.substr(q + 1);
    for (auto& f : m) req_.headers.add(std::string(f.name_string()), std::string(f.value()));
    if (auto cl = parser_->content_length()) req_.content_length = *cl;
    req_.chunked = parser_->chunked();
    direct_ = !req_.chunked && req_.content_length.has_value();
    body_left_ = req_.content_length.value_or(0);
    beast::error_code ec;
    auto ep = raw_socket(stream_).remote_endpoint(ec);
    if (!ec) req_.remote_addr = ep.address().to_string();
    req_.via_trusted_proxy = false;
    for (auto& t : srv_.opts.trusted_proxies) req_.via_trusted_proxy = req_.via_trusted_proxy || t == req_.remote_addr;
    req_.tls = tls_;
    keep_alive_ = m.keep_alive();
    check_framing();
    auto expect = req_.headers.get("Expect");
    expect_continue_ = expect && (*expect == "100-continue" || *expect == "100-Continue");
    responded_ = false;
    streaming_ = false;
    chunked_out_ = false;
    bad_body_ = false;
    route = "other";
    common_headers = Headers{};
    bytes_in = bytes_out = 0;
    status = 0;
  }

  // RFC 9112 §6.1 and §6.3: a request's Transfer-Encoding must end in
  // `chunked` (else the body's length cannot be known: 400, and the
  // connection closes); codings before it we do not implement (501); with
  // both Transfer-Encoding and Content-Length the transfer coding frames the
  // body and the connection closes after the response. Sets framing_status_.
  void check_framing() {
    framing_status_ = 0;
    framing_message_.clear();
    auto te = req_.headers.all("Transfer-Encoding");
    if (te.empty()) return;
    std::vector<std::string> codings;
    for (auto v : te) {
      size_t i = 0;
      while (i <= v.size()) {
        size_t j = v.find(',', i);
        if (j == std::string_view::npos) j = v.size();
        std::string_view c = v.substr(i, j - i);
        while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
        while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
        if (auto semi = c.find(';'); semi != std::string_view::npos) c = c.substr(0, semi);
        if (!c.empty()) {
          std::string low(c);
          for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          codings.push_back(low);
        }
        i = j + 1;
      }
    }
    if (both_lengths_) keep_alive_ = false;
    if (codings.empty() || codings.back() != "chunked") {
      framing_status_ = 400;
      framing_message_ = "Transfer-Encoding must end in chunked";
      return;
    }
    if (codings.size() > 1) {
      framing_status_ = 501;
      framing_message_ = "transfer coding not implemented: " + codings.front();
    }
  }

  // Reads a request's header block into inbuf_ and parses it, consuming it
  // only when it parsed: with both Transfer-Encoding and Content-Length
  // (which Beast refuses) the block is parsed again without Content-Length,
  // as RFC 9112 §6.1 allows (the transfer coding frames the body; the
  // connection closes after the response).
  asio::awaitable<beast::error_code> read_header() {
    both_lengths_ = false;
    size_t from = 0;
    for (;;) {
      std::string_view in(static_cast<const char*>(inbuf_.data().data()), inbuf_.size());
      size_t end = in.find("\r\n\r\n", from);
      if (end != std::string_view::npos) {
        beast::error_code ec;
        size_t used = parser_->put(inbuf_.data(), ec);
        if ((ec == bhttp::error::bad_transfer_encoding || ec == bhttp::error::bad_content_length) &&
            !both_lengths_ && drop_content_length()) {
          both_lengths_ = true;
          parser_.emplace();
          parser_->body_limit(boost::none);
          parser_->header_limit(64 * 1024);
          continue;
        }
        if (ec == bhttp::error::need_more) {  // blank lines before the request line
          inbuf_.consume(used);
          from = 0;
          if (used == 0) from = end + 1;
        } else {
          if (!ec) inbuf_.consume(used);
          co_return ec;
        }
      } else {
        from = in.size() >= 3 ? in.size() - 3 : 0;
      }
      if (inbuf_.size() > 64 * 1024) co_return bhttp::error::header_limit;
      auto [ec, n] = co_await stream_.async_read_some(inbuf_.prepare(16 * 1024), kTuple);
      if (ec) co_return ec == asio::error::eof && inbuf_.size() == 0 ? bhttp::error::end_of_stream : ec;
      inbuf_.commit(n);
    }
  }

  // If the buffered header block has both Transfer-Encoding and
  // Content-Length, removes its Content-Length fields; true when it did.
  bool drop_content_length() {
    std::string_view in(static_cast<const char*>(inbuf_.data().data()), inbuf_.size());
    size_t end = in.find("\r\n\r\n");
    if (end == std::string_view::npos) return false;
    std::string head;
    bool te = false, cl = false;
    size_t i = 0;
    while (i < end + 2) {
      size_t j = in.find("\r\n", i);
      std::string_view line = in.substr(i, j - i);
      auto starts = [&](std::string_view name) {
        return line.size() > name.size() && beast::iequals(line.substr(0, name.size()), name) &&
               line[name.size()] == ':';
      };
      if (starts("Content-Length")) {
        cl = true;
      } else {
        te = te || starts("Transfer-Encoding");
        head.append(line);
        head += "\r\n";
      }
      i = j + 2;
    }
    if (!te || !cl) return false;
    head += "\r\n";
    std::string rest(in.substr(end + 4));
    inbuf_.consume(inbuf_.size());
    auto out = inbuf_.prepare(head.size() + rest.size());
    std::memcpy(out.data(), head.data(), head.size());
    std::memcpy(static_cast<char*>(out.data()) + head.size(), rest.data(), rest.size());
    inbuf_.commit(head.size() + rest.size());
    return true;
  }

  std::string header_block(const Response& r, uint64_t len, bool chunked) {
    responded_ = true;
    status = r.status;
    std::string h;
    h.reserve(256);
    h += "HTTP/1.1 ";
    h += std::to_string(r.status);
    h += ' ';
    h += reason_phrase(r.status);
    h += "\r\n";
    bool has_len = false;
    for (auto& [k, v] : common_headers.items()) {
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
    for (auto& [k, v] : r.headers.items()) {
      if (beast::iequals(k, "Content-Length")) has_len = true;
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
    if (chunked || r.length_unknown) {
      h += "Transfer-Encoding: chunked\r\n";
    } else if (!has_len && r.status != 204 && r.status != 304) {
      h += "Content-Length: ";
      h += std::to_string(len);
      h += "\r\n";
    }
    // Unread request body we will not drain: tell the client we close.
    if (srv_.stopping) keep_alive_ = false;
    if (!keep_alive_) h += "Connection: close\r\n";
    h += "\r\n";
    return h;
  }

  // Sends file bytes as they are: sendfile on plain TCP, pread + write on TLS.
  // Each sendfile call is capped at kSendfileStep. Measured on loopback with a
  // 1.2 GB cached squash (bench/squash.sh's cached row): one call per socket
  // buffer's worth (tens of MB at a time) served at 0.36-0.40 s, like nginx
  // (whose sendfile_max_chunk is 2 MiB); 128 KiB calls at 0.17-0.18 s, 256 KiB
  // 0.18-0.19 s, 512 KiB 0.24 s. A long call holds the socket lock, so the
  // peer's ACKs wait in the socket's backlog until it returns; short calls let
  // them through and the window keeps moving.
  static constexpr uint64_t kSendfileStep = 128 * 1024;
  asio::awaitable<void> file_body(int fd, uint64_t offset, uint64_t length) {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      auto& sock = raw_socket(stream_);
      sock.native_non_blocking(true);
      off_t off = static_cast<off_t>(offset);
      uint64_t left = length;
      while (left) {
        ssize_t n = ::sendfile(sock.native_handle(), fd, &off, std::min<uint64_t>(left, kSendfileStep));
        if (n > 0) {
          left -= static_cast<uint64_t>(n);
          bytes_out += static_cast<uint64_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          co_await wait_writable(sock);
        } else if (n == 0) {
          throw std::runtime_error("file ended early");
        } else {
          throw std::system_error(errno, std::generic_category(), "sendfile");
        }
      }
    } else {
      std::vector<char> buf(256 * 1024);
      uint64_t off = offset, left = length;
      while (left) {
        ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(left, buf.size()), static_cast<off_t>(off));
        if (n <= 0) throw std::runtime_error("file ended early");
        co_await send_all(asio::buffer(buf.data(), static_cast<size_t>(n)));
        off += n;
        left -= n;
        bytes_out += n;
      }
    }
  }

  asio::awaitable<void> write_raw(const std::string& head, std::string_view body) {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body.data(), body.size())};
    co_await send_all(bufs);
    bytes_out += body.size();
  }

  // Writes all of `bufs`. The send timeout applies to each write: a client
  // that takes bytes, however slowly, is never cut off; one that takes none
  // for send_timeout is dropped (the write throws).
  template <class Buffers>
  asio::awaitable<void> send_all(const Buffers& bufs) {
    beast::buffers_suffix<Buffers> rest(bufs);
    while (beast::buffer_bytes(rest) > 0) {
      tcp_layer(stream_).expires_after(srv_.opts.send_timeout);
      auto [ec, n] = co_await stream_.async_write_some(rest, kTuple);
      tcp_layer(stream_).expires_never();
      if (ec) throw beast::system_error(ec);
      rest.consume(n);
    }
  }

  // Waits until the socket takes bytes again, at most send_timeout (sendfile's wait).
  asio::awaitable<void> wait_writable(tcp::socket& sock) {
    send_timer_.expires_after(srv_.opts.send_timeout);
    send_timer_.async_wait([&sock](beast::error_code ec) {
      if (!ec) sock.cancel();
    });
    auto [ec] = co_await sock.async_wait(tcp::socket::wait_write, kTuple);
    send_timer_.cancel();
    if (ec) throw beast::system_error(ec);
  }

  // Reads and discards up to `limit` bytes of unread request body. False
  // when the body is larger or the client stalls.
  asio::awaitable<bool> drain(uint64_t limit) {
    std::vector<char> scratch(64 * 1024);
    uint64_t seen = 0;
    while (!body_done()) {
      size_t n;
      try {
        n = co_await read_body(scratch);
      } catch (const std::exception&) {
        co_return false;
      }
      seen += n;
      if (seen > limit) co_return false;
    }
    co_return true;
  }

  // Closes politely: stop sending, read (and drop) what the client still
  // sends for a short while, so it sees our response instead of a reset.
  asio::awaitable<void> linger() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      beast::error_code ec;
      raw_socket(stream_).shutdown(tcp::socket::shutdown_send, ec);
      std::vector<char> scratch(64 * 1024);
      tcp_layer(stream_).expires_after(std::chrono::seconds(2));
      for (int i = 0; i < 1024; ++i) {
        auto [rec, n] = co_await stream_.async_read_some(asio::buffer(scratch), kTuple);
        if (rec) break;
      }
    } else {
      auto [ec] = co_await stream_.async_shutdown(kTuple);
      (void)ec;
    }
  }

  Server::Impl& srv_;
  Stream stream_;
  bool tls_;
  int reject_ = 0;
  asio::steady_timer send_timer_;
  int framing_status_ = 0;  // set by check_framing()
  std::string framing_message_;
  bool bad_body_ = false;   // read_body met malformed chunked framing
  bool both_lengths_ = false;  // the request had Transfer-Encoding and Content-Length
  beast::flat_buffer inbuf_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  Request req_;
  bool in_request_ = false;
  bool keep_alive_ = true;
  bool expect_continue_ = false;
  bool responded_ = false;
  bool streaming_ = false;
  bool chunked_out_ = false;
  bool direct_ = false;     // Content-Length body read without the parser
  uint64_t body_left_ = 0;  // of a direct body
  static constexpr size_t kBodyLowat = 256 * 1024;
  int lowat_ = 1;  // SO_RCVLOWAT of the socket: raised while a large body arrives
  void reset_lowat() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      if (lowat_ != 1) {
        int one = 1;
        ::setsockopt(raw_socket(stream_).native_handle(), SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
        lowat_ = 1;
      }
    }
  }
};

}  // namespace

asio::awaitable<void> Server::Impl::serve_socket(tcp::socket sock, std::string addr, int reject) {
  struct Admission {
    Impl& im;
    const std::string& addr;
    int reject;
    ~Admission() { reject ? im.unreject() : im.release(addr); }
  } admission{*this, addr, reject};
  sock.set_option(tcp::no_delay(true));
  // Peek the first byte: 0x16 is a TLS ClientHello.
  unsigned char first = 0;
  {
    asio::steady_timer t(sock.get_executor(), reject ? std::chrono::seconds(2) : opts.header_timeout);
    t.async_wait([&sock](beast::error_code ec) {
      if (!ec) sock.cancel();
    });
    auto [ec, n] = co_await sock.async_receive(asio::buffer(&first, 1), tcp::socket::message_peek, kTuple);
    t.cancel();
    if (ec || n == 0) co_return;
  }
  if (first == 0x16 && tls) {
    beast::ssl_stream<beast::tcp_stream> s(beast::tcp_stream(std::move(sock)), *tls);
    s.next_layer().expires_after(reject ? std::chrono::seconds(2) : opts.header_timeout);
    auto [ec] = co_await s.async_handshake(ssl::stream_base::server, kTuple);
    if (ec) co_return;
    auto c = std::make_unique<Conn<beast::ssl_stream<beast::tcp_stream>>>(*this, std::move(s), true, reject);
    co_await c->run();
  } else if (first == 0x16 || tls) {
    // TLS client on a plain port (clients then retry over HTTP), or plain
    // HTTP on a TLS port.
    static const std::string kPlain400 = "HTTP/1.0 400 Bad Request\r\n\r\n";
    static const std::string kNeedTls =
        "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    co_await asio::async_write(sock, asio::buffer(tls ? kNeedTls : kPlain400), kTuple);
    beast::error_code ec2;
    sock.shutdown(tcp::socket::shutdown_both, ec2);
  } else {
    auto c = std::make_unique<Conn<beast::tcp_stream>>(*this, beast::tcp_stream(std::move(sock)), false, reject);
    co_await c->run();
  }
}

asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    auto strand = asio::make_strand(ioc);
    tcp::socket sock(strand);
    auto [ec] = co_await acceptor.async_accept(sock, kTuple);
    if (stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning.
      asio::steady_timer t(ioc, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::use_awaitable);
      continue;
    }
    beast::error_code aec;
    auto peer = sock.remote_endpoint(aec);
    if (aec) continue;
    std::string addr = peer.address().to_string();
    int reject = admit(addr);
    if (reject < 0) continue;  // closed at once
    asio::co_spawn(strand, serve_socket(std::move(sock), std::move(addr), reject), asio::detached);
  }
}

Server::Server(ServerOptions opts, Handler handler) : impl_(std::make_unique<Impl>(std::move(opts), std::move(handler))) {}
Server::~Server() = default;

void Server::bind() {
  auto& o = impl_->opts;
  auto colon = o.listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("listen address must be HOST:PORT, got " + o.listen);
  std::string host = o.listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  unsigned short port = static_cast<unsigned short>(std::stoi(o.listen.substr(colon + 1)));
  tcp::endpoint ep(asio::ip::make_address(host), port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  beast::error_code ec;
  a.bind(ep, ec);
  if (ec) throw std::runtime_error("cannot listen on " + o.listen + ": " + ec.message());
  a.listen(asio::socket_base::max_listen_connections);
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    impl_->tls.emplace(ssl::context::tls_server);
    impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    impl_->tls->use_certificate_chain_file(o.tls_cert);
    impl_->tls->use_private_key_file(o.tls_key, ssl::context::pem);
  }
}

unsigned short Server::port() const { return impl_->acceptor.local_endpoint().port(); }

void Server::run() {
  auto& im = *impl_;
  // sendfile(2) on a socket the client closed raises SIGPIPE (asio's own
  // sends use MSG_NOSIGNAL, sendfile cannot): the error must come back as EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  asio::signal_set signals(im.ioc, SIGTERM, SIGINT);
  signals.async_wait([&im](beast::error_code ec, int) {
    if (ec) return;
    im.stopping = true;
    beast::error_code ignored;
    im.acceptor.close(ignored);
    std::vector<Tracked*> idle;
    {
      std::lock_guard lk(im.mu);
      idle.assign(im.conns.begin(), im.conns.end());
      if (!im.conns.empty()) {
        im.drain_timer.emplace(im.ioc, im.opts.drain_timeout);
        im.drain_timer->async_wait([&im](beast::error_code e) {
          if (!e) im.ioc.stop();  // requests still running after the drain timeout
        });
      }
    }
    for (auto* c : idle) c->close_if_idle();
  });
  asio::co_spawn(im.ioc, im.accept_loop(), asio::detached);
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, im.opts.threads); ++i) threads.emplace_back([&im] { im.ioc.run(); });
  im.ioc.run();
  for (auto& t : threads) t.join();
}

}  // namespace wharf::http
